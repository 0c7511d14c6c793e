/* Opening a model file for loading: one call opens it, reads its head and maps
 * the whole file copy-on-write, so the loader pays five system calls and no
 * Python objects for what it needs before the header is checked.
 *
 * The mapping is private and writable (MAP_PRIVATE, PROT_READ | PROT_WRITE):
 * arrays over it can be trained in place while the file stays as it was, and
 * saving over the file (write a new file, rename) never changes what a mapping
 * shows.  The head is read with pread, not through the mapping, so checking
 * the preamble and the header does not fault in the mapping's pages.
 */
#ifndef FASTMLP_FILEMAP_H
#define FASTMLP_FILEMAP_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    void *addr;         /* NULL when nothing is mapped */
    size_t size;        /* the file's size in bytes */
    int fd;             /* the open file while mapped, until fm_close_file; else -1 */
} fm_file_map;

/* Open `path` read-only, read up to `head_cap` bytes from its start into `head`
 * (*head_len: how many were read) and, when the file has at least `min_map`
 * bytes, map all of it and keep it open (fm_pread reads it; fm_close_file closes it).  Returns 0, or an errno value with nothing left open or
 * mapped; FM_MAP_UNSUPPORTED where this platform has no mmap (the caller then
 * reads the file instead).  A file shorter than min_map is read, not mapped. */
int fm_map_file(const char *path, unsigned char *head, size_t head_cap, size_t *head_len,
                size_t min_map, fm_file_map *out);

/* Read up to n bytes at `offset` of a mapped file through its descriptor, not
 * the mapping (no page of the mapping is faulted in); returns the count read
 * (short at the end of the file) or -1 when the file is closed or the read fails. */
long long fm_pread(const fm_file_map *map, void *dst, size_t n, size_t offset);

/* Close the file's descriptor; the mapping stays. */
void fm_close_file(fm_file_map *map);

/* Close the descriptor if still open, and undo the mapping (nothing when addr is NULL). */
void fm_unmap_file(fm_file_map *map);

/* A read of `n` bytes at `offset` of a file into `dst` on a thread of its own,
 * `piece` bytes at a time (0: 256 KiB; at least n / 65536 + 1), the zip CRC-32
 * of each piece taken while it is in the cache; another thread waits for the
 * bytes it needs (fm_read_job_wait) and uses them while the rest is still being
 * read -- the .keras loader parses the weights file's structure and copies the
 * layers' weights as the optimizer's slots behind them arrive.  A waiting
 * thread reads the pieces it waits for itself when the job's thread has not
 * taken them yet (that thread may be waiting for a core), so two threads may
 * read at once; the pieces' CRCs are chained in order.  The reading thread
 * never touches the interpreter.
 *
 * fm_read_job_start takes `fd` (fm_read_job_finish closes it; on failure the
 * caller keeps it) and returns the job, or NULL with errno set (ENOSYS on
 * platforms without POSIX threads and reads).  `dst` must outlive the job.
 * fm_read_job_wait blocks until at least `upto` bytes are read or the read has
 * ended, and returns the count read so far: less than `upto` only when the
 * read ended short (the end of the file, a failure, a cancel).
 * fm_read_job_finish (`cancel`: stop after the pieces being read; else read
 * what is left, on this thread too) waits for the thread, closes `fd`, frees
 * the job and returns the count read with *crc their CRC-32, or -1 with *err
 * the errno value of the failed read, once no other call on the job is under way. */
typedef struct fm_read_job fm_read_job;
fm_read_job *fm_read_job_start(int fd, void *dst, size_t n, long long offset, size_t piece);
size_t fm_read_job_wait(fm_read_job *job, size_t upto);
long long fm_read_job_finish(fm_read_job *job, int cancel, uint32_t *crc, int *err);

/* Saving: reserve the disk blocks of a file about to be written with `nbytes`
 * bytes, without changing its size (Linux: fallocate with FALLOC_FL_KEEP_SIZE),
 * so the file system allocates them at once rather than page by page as the
 * writes arrive.  Returns 0, or an errno value (ENOSPC: the disk is full;
 * EOPNOTSUPP and the like: this file system has no preallocation, and the
 * writes allocate as usual).  0 and nothing done on other platforms. */
int fm_preallocate(int fd, long long nbytes);

/* Saving: start writing `nbytes` bytes at `offset` of the file, already
 * written, to the disk, without waiting (Linux: sync_file_range with
 * SYNC_FILE_RANGE_WRITE), so the fsync that ends the save waits for the
 * last piece only.  Durability still comes from that fsync.  Returns 0 or an
 * errno value; 0 and nothing done on other platforms. */
int fm_start_writeback(int fd, long long offset, long long nbytes);

/* Saving: write `n` bytes of `buf` at `offset` of the file open as `fd` (pwrite;
 * short writes and EINTR retried), `piece` bytes at a time (0: 256 KiB).  With
 * `crc` non-NULL the zip CRC-32 *crc is continued over each piece just before it
 * is written, while it is in the cache.  Whenever what was written runs `kick`
 * or more bytes ahead of *sent, the bytes from *sent on are handed to the disk
 * (fm_start_writeback) and *sent moves to the end of them (kick 0: never).
 * Returns 0 or the errno value of the failed write; ENOSYS on platforms without
 * POSIX I/O (the caller writes through Python then). */
int fm_write_behind(int fd, const void *buf, size_t n, long long offset, size_t piece, long long kick,
                    long long *sent, uint32_t *crc);

/* Close `fd` on a thread of its own, without waiting: a save holds the file it
 * replaces open across the rename, so that the kernel frees that file's pages
 * and blocks -- milliseconds for a file of a few MB -- when this closes it, not
 * inside the rename.  Closes it at once where no thread can be started (and on
 * platforms without POSIX threads). */
void fm_close_later(int fd);

/* 1 when the file open as `fd` lies on a network or FUSE file system (NFS, SMB,
 * CIFS, 9p, FUSE, AFS, Ceph, Lustre, GPFS: Linux's statfs magic numbers), where
 * a file held open while renamed over is kept by the client under another name
 * ("silly rename") -- a save then does not hold the file it replaces; else 0. */
int fm_remote_fs(int fd);

#define FM_MAP_UNSUPPORTED (-1)

#ifdef __cplusplus
}
#endif
#endif
