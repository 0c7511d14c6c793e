/* See filemap.h. */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE   /* fallocate and sync_file_range */
#endif
#include "filemap.h"
#include "checksum.h"
#include <errno.h>
#include <stdlib.h>

#if defined(__unix__) || defined(__APPLE__)
#include <fcntl.h>
#include <pthread.h>
#if defined(__linux__)
#include <sys/vfs.h>
#endif
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

int fm_map_file(const char *path, unsigned char *head, size_t head_cap, size_t *head_len,
                size_t min_map, fm_file_map *out)
{
    out->addr = NULL;
    out->size = 0;
    out->fd = -1;
    *head_len = 0;
    int fd;
    do {
        fd = open(path, O_RDONLY | O_CLOEXEC);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0)
        return errno;
    int err = 0;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        err = errno;
        goto done;
    }
    if (S_ISDIR(st.st_mode)) {
        err = EISDIR;
        goto done;
    }
    out->size = (size_t)st.st_size;
    size_t want = head_cap < out->size ? head_cap : out->size;
    while (*head_len < want) {   /* a short read is retried; end of file stops it */
        ssize_t got = pread(fd, head + *head_len, want - *head_len, (off_t)*head_len);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            err = errno;
            goto done;
        }
        if (got == 0)
            break;
        *head_len += (size_t)got;
    }
    if (S_ISREG(st.st_mode) && out->size >= min_map && out->size > 0) {
        void *addr = mmap(NULL, out->size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
        if (addr == MAP_FAILED) {
            err = errno;
            goto done;
        }
        out->addr = addr;
        out->fd = fd;
        return 0;
    }
done:
    close(fd);
    if (err) {
        out->size = 0;
        *head_len = 0;
    }
    return err;
}

/* n bytes at `offset` of fd into dst: the count read (short only at the end of
 * the file; a short read is retried) or -1 with errno set. */
static long long read_at(int fd, void *dst, size_t n, long long offset)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = pread(fd, (char *)dst + got, n - got, (off_t)(offset + (long long)got));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        if (r == 0)
            break;
        got += (size_t)r;
    }
    return (long long)got;
}

long long fm_pread(const fm_file_map *map, void *dst, size_t n, size_t offset)
{
    if (map->fd < 0)
        return -1;
    return read_at(map->fd, dst, n, (long long)offset);
}

void fm_close_file(fm_file_map *map)
{
    if (map->fd >= 0)
        close(map->fd);
    map->fd = -1;
}

void fm_unmap_file(fm_file_map *map)
{
    fm_close_file(map);
    if (map->addr != NULL)
        munmap(map->addr, map->size);
    map->addr = NULL;
}

#define FM_READ_PIECES_MAX 65536   /* a longer read takes longer pieces */

struct fm_read_job {
    int fd;
    unsigned char *dst;
    size_t n, piece, count;   /* count: pieces, the last one shorter when piece does not divide n */
    long long offset;
    uint32_t shift;           /* fm_crc32_zip_shift(piece) */
    pthread_t thread;
    pthread_mutex_t lock;     /* guards what follows */
    pthread_cond_t moved;     /* `done` grew, or the read ended */
    size_t next;              /* the first piece no thread has taken */
    size_t whole;             /* pieces [0, whole) are read, `done` bytes in all */
    size_t done;              /* bytes read so far, from dst[0] on, without a gap */
    uint32_t crc;             /* theirs */
    unsigned char *ready;     /* per piece: read, its CRC in crcs[] (it counts once the ones before it do) */
    uint32_t *crcs;
    size_t short_at, short_len;   /* the first piece read short (the end of the file): its count */
    size_t err_at;            /* the first piece whose read failed */
    size_t busy;              /* pieces being read now */
    int stopped, cancel, err; /* stopped: no piece is taken any more (a short read, a failure) */
};

static size_t piece_len(const fm_read_job *job, size_t i)
{
    size_t at = i * job->piece;
    return job->n - at < job->piece ? job->n - at : job->piece;
}

/* Take the next piece, when there is one before piece `until`, read it and
 * record it: 1, or 0 when there was none to take.  Called with the lock held;
 * reads without it. */
static int read_one(fm_read_job *job, size_t until)
{
    if (job->stopped || job->cancel || job->next >= job->count || job->next >= until)
        return 0;
    size_t i = job->next++;
    job->busy++;
    pthread_mutex_unlock(&job->lock);
    size_t at = i * job->piece, want = piece_len(job, i);
    long long r = read_at(job->fd, job->dst + at, want, job->offset + (long long)at);
    int err = r < 0 ? (errno ? errno : EIO) : 0;
    uint32_t crc = r > 0 ? fm_crc32_zip(0, job->dst + at, (size_t)r) : 0;
    pthread_mutex_lock(&job->lock);
    job->busy--;
    if (err) {
        if (i < job->err_at) {   /* (it counts only before the end of the file: see finish) */
            job->err_at = i;
            job->err = err;
        }
        job->stopped = 1;
    } else {
        if ((size_t)r < want && i < job->short_at) {
            job->short_at = i;
            job->short_len = (size_t)r;
            job->stopped = 1;   /* the end of the file: nothing after it counts */
        }
        job->ready[i] = 1;
        job->crcs[i] = crc;
    }
    while (job->whole < job->count && job->whole <= job->short_at && job->ready[job->whole]) {
        size_t k = job->whole++;
        size_t len = k == job->short_at ? job->short_len : piece_len(job, k);
        uint32_t shift = len == job->piece ? job->shift : fm_crc32_zip_shift(len);
        job->crc = fm_crc32_zip_combine(job->crc, job->crcs[k], shift);
        job->done += len;
    }
    pthread_cond_broadcast(&job->moved);
    return 1;
}

/* Whether the read is over: every piece that counts is in, or nothing more will come. */
static int read_over(const fm_read_job *job)
{
    return job->whole == job->count || job->whole > job->short_at
        || ((job->stopped || job->cancel) && job->busy == 0);
}

static void *read_job_run(void *arg)
{
    fm_read_job *job = arg;
    pthread_mutex_lock(&job->lock);
    while (read_one(job, job->count))
        ;
    pthread_mutex_unlock(&job->lock);
    return NULL;
}

fm_read_job *fm_read_job_start(int fd, void *dst, size_t n, long long offset, size_t piece)
{
    fm_read_job *job = calloc(1, sizeof *job);
    if (job == NULL)
        return NULL;
    job->fd = fd;
    job->dst = dst;
    job->n = n;
    job->offset = offset;
    job->piece = piece ? piece : (size_t)1 << 18;
    if (job->piece < n / FM_READ_PIECES_MAX + 1)
        job->piece = n / FM_READ_PIECES_MAX + 1;
    job->count = n / job->piece + (n % job->piece != 0);
    job->shift = fm_crc32_zip_shift(job->piece);
    job->short_at = job->err_at = (size_t)-1;
    job->ready = calloc(job->count + 1, 1);
    job->crcs = calloc(job->count + 1, sizeof *job->crcs);
    int r = job->ready && job->crcs ? pthread_mutex_init(&job->lock, NULL) : ENOMEM;
    if (r == 0) {
        r = pthread_cond_init(&job->moved, NULL);
        if (r != 0)
            pthread_mutex_destroy(&job->lock);
    }
    if (r == 0) {
        r = pthread_create(&job->thread, NULL, read_job_run, job);
        if (r != 0) {
            pthread_cond_destroy(&job->moved);
            pthread_mutex_destroy(&job->lock);
        }
    }
    if (r != 0) {
        free(job->ready);
        free(job->crcs);
        free(job);
        errno = r;
        return NULL;
    }
    return job;
}

size_t fm_read_job_wait(fm_read_job *job, size_t upto)
{
    pthread_mutex_lock(&job->lock);
    while (job->done < upto && !read_over(job)) {
        /* the pieces that hold bytes below `upto`, not yet taken: read here */
        size_t until = upto / job->piece + (upto % job->piece != 0);
        if (!read_one(job, until))
            pthread_cond_wait(&job->moved, &job->lock);
    }
    size_t done = job->done;
    pthread_mutex_unlock(&job->lock);
    return done;
}

long long fm_read_job_finish(fm_read_job *job, int cancel, uint32_t *crc, int *err)
{
    if (cancel) {
        pthread_mutex_lock(&job->lock);
        job->cancel = 1;
        pthread_mutex_unlock(&job->lock);
    } else {
        fm_read_job_wait(job, job->n);
    }
    pthread_join(job->thread, NULL);
    close(job->fd);
    /* a failure in a piece past the end of the file (taken before the short read was known) is
     * no failure: the read in order would never have made it */
    int failed = job->err && job->err_at <= job->short_at;
    long long got = failed ? -1 : (long long)job->done;
    *crc = job->crc;
    *err = failed ? job->err : 0;
    pthread_cond_destroy(&job->moved);
    pthread_mutex_destroy(&job->lock);
    free(job->ready);
    free(job->crcs);
    free(job);
    return got;
}

static void *close_run(void *arg)
{
    close((int)(intptr_t)arg);
    return NULL;
}

void fm_close_later(int fd)
{
    pthread_attr_t attr;
    pthread_t thread;
    int started = 0;
    if (pthread_attr_init(&attr) == 0) {
        if (pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED) == 0)
            started = pthread_create(&thread, &attr, close_run, (void *)(intptr_t)fd) == 0;
        pthread_attr_destroy(&attr);
    }
    if (!started)
        close(fd);
}

int fm_write_behind(int fd, const void *buf, size_t n, long long offset, size_t piece, long long kick,
                    long long *sent, uint32_t *crc)
{
    const unsigned char *p = buf;
    if (piece == 0)
        piece = (size_t)1 << 18;
    size_t done = 0;
    while (done < n) {
        size_t want = n - done < piece ? n - done : piece;
        if (crc != NULL)
            *crc = fm_crc32_zip(*crc, p + done, want);
        size_t put = 0;
        while (put < want) {
            ssize_t r = pwrite(fd, p + done + put, want - put, (off_t)(offset + (long long)(done + put)));
            if (r < 0 && errno == EINTR)
                continue;
            if (r < 0)
                return errno ? errno : EIO;
            if (r == 0)
                return EIO;
            put += (size_t)r;
        }
        done += want;
        long long end = offset + (long long)done;
        if (kick > 0 && end - *sent >= kick) {
            fm_start_writeback(fd, *sent, end - *sent);
            *sent = end;
        }
    }
    return 0;
}

int fm_remote_fs(int fd)
{
#if defined(__linux__)
    struct statfs st;
    if (fstatfs(fd, &st) != 0)
        return 0;
    switch ((unsigned long)st.f_type) {
    case 0x6969UL:       /* NFS */
    case 0x517BUL:       /* SMB */
    case 0xFF534D42UL:   /* CIFS */
    case 0xFE534D42UL:   /* SMB2 */
    case 0x01021997UL:   /* 9p */
    case 0x65735546UL:   /* FUSE */
    case 0x6B414653UL:   /* AFS */
    case 0x5346414FUL:   /* OpenAFS */
    case 0x00C36400UL:   /* Ceph */
    case 0x0BD00BD0UL:   /* Lustre */
    case 0x47504653UL:   /* GPFS */
        return 1;
    default:
        return 0;
    }
#else
    (void)fd;
    return 0;
#endif
}

int fm_preallocate(int fd, long long nbytes)
{
#if defined(__linux__)
    if (nbytes <= 0)
        return 0;
    int r;
    do {
        r = fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, (off_t)nbytes);
    } while (r != 0 && errno == EINTR);
    return r == 0 ? 0 : errno;
#else
    (void)fd; (void)nbytes;
    return 0;
#endif
}

int fm_start_writeback(int fd, long long offset, long long nbytes)
{
#if defined(__linux__)
    if (nbytes <= 0)
        return 0;
    return sync_file_range(fd, (off_t)offset, (off_t)nbytes, SYNC_FILE_RANGE_WRITE) == 0 ? 0 : errno;
#else
    (void)fd; (void)offset; (void)nbytes;
    return 0;
#endif
}

#else   /* no POSIX mmap: the loader reads the file */
#if defined(_WIN32)
#include <io.h>
#else
#include <unistd.h>
#endif

int fm_map_file(const char *path, unsigned char *head, size_t head_cap, size_t *head_len,
                size_t min_map, fm_file_map *out)
{
    (void)path; (void)head; (void)head_cap; (void)min_map;
    out->addr = NULL;
    out->size = 0;
    out->fd = -1;
    *head_len = 0;
    return FM_MAP_UNSUPPORTED;
}

long long fm_pread(const fm_file_map *map, void *dst, size_t n, size_t offset)
{
    (void)map; (void)dst; (void)n; (void)offset;
    return -1;
}

void fm_close_file(fm_file_map *map)
{
    map->fd = -1;
}

void fm_unmap_file(fm_file_map *map)
{
    map->addr = NULL;
}
fm_read_job *fm_read_job_start(int fd, void *dst, size_t n, long long offset, size_t piece)
{
    (void)fd; (void)dst; (void)n; (void)offset; (void)piece;
    errno = ENOSYS;
    return NULL;
}

size_t fm_read_job_wait(fm_read_job *job, size_t upto)
{
    (void)job; (void)upto;
    return 0;
}

long long fm_read_job_finish(fm_read_job *job, int cancel, uint32_t *crc, int *err)
{
    (void)job; (void)cancel;
    *crc = 0;
    *err = ENOSYS;
    return -1;
}

void fm_close_later(int fd)
{
    close(fd);
}

int fm_write_behind(int fd, const void *buf, size_t n, long long offset, size_t piece, long long kick,
                    long long *sent, uint32_t *crc)
{
    (void)fd; (void)buf; (void)n; (void)offset; (void)piece; (void)kick; (void)sent; (void)crc;
    return ENOSYS;
}

int fm_remote_fs(int fd)
{
    (void)fd;
    return 0;
}

int fm_preallocate(int fd, long long nbytes)
{
    (void)fd; (void)nbytes;
    return 0;
}

int fm_start_writeback(int fd, long long offset, long long nbytes)
{
    (void)fd; (void)offset; (void)nbytes;
    return 0;
}
#endif
