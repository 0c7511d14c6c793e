# Opening a model file for the loader (included by _engine.pyx; C in csrc/filemap.c).
from cpython.buffer cimport PyBuffer_FillInfo
from cpython.bytes cimport PyBytes_FromStringAndSize
from cpython.buffer cimport PyBUF_WRITABLE
from libc.stdlib cimport free, malloc
cimport libc.errno as cerrno

cdef extern from "filemap.h" nogil:
    ctypedef struct fm_file_map:
        void *addr
        size_t size
        int fd
    int fm_map_file(const char *path, unsigned char *head, size_t head_cap, size_t *head_len,
                    size_t min_map, fm_file_map *out)
    long long fm_pread(const fm_file_map *map, void *dst, size_t n, size_t offset)
    void fm_close_file(fm_file_map *map)
    void fm_unmap_file(fm_file_map *map)
    ctypedef struct fm_read_job:
        pass
    fm_read_job *fm_read_job_start(int fd, void *dst, size_t n, long long offset, size_t piece)
    size_t fm_read_job_wait(fm_read_job *job, size_t upto)
    long long fm_read_job_finish(fm_read_job *job, int cancel, uint32_t *crc, int *err)
    int fm_preallocate(int fd, long long nbytes)
    int fm_start_writeback(int fd, long long offset, long long nbytes)
    void fm_close_later(int fd)
    int fm_remote_fs(int fd)
    int fm_write_behind(int fd, const void *buf, size_t n, long long offset, size_t piece, long long kick,
                        long long *sent, uint32_t *crc)
    enum: FM_MAP_UNSUPPORTED


cdef class FileMap:
    """A whole file mapped copy-on-write: a writable buffer whose writes never
    reach the file.  The mapping lives while anything (an array made with
    ``np.frombuffer``) holds the object; the file stays open until ``close_file``."""
    cdef fm_file_map map

    def pread(self, Py_ssize_t n, Py_ssize_t offset):
        """Up to n bytes at ``offset``, read from the file rather than the mapping,
        so no page of the mapping is faulted in (shorter at the end of the file)."""
        if n < 0 or offset < 0:
            raise ValueError("internal: negative size or offset")
        cdef bytes out = PyBytes_FromStringAndSize(NULL, n)
        cdef char *dst = out
        cdef long long got
        with nogil:
            got = fm_pread(&self.map, dst, <size_t>n, <size_t>offset)
        if got < 0:
            raise OSError("the model file could not be read (closed, or a read error)")
        return out if got == n else out[:got]

    def close_file(self):
        """Close the file; the mapping stays."""
        fm_close_file(&self.map)

    def __getbuffer__(self, Py_buffer *view, int flags):
        PyBuffer_FillInfo(view, self, self.map.addr, <Py_ssize_t>self.map.size, 0, flags)

    def __releasebuffer__(self, Py_buffer *view):
        pass

    def __len__(self):
        return <Py_ssize_t>self.map.size

    def __dealloc__(self):
        fm_unmap_file(&self.map)


cdef class Memory:
    """Uninitialized bytes from the C allocator, as a writable buffer (``np.frombuffer`` views
    them), freed with the object (``memory``).  Not copied or pickled: arrays over it are."""
    cdef void *p   # (not char *: Cython would pickle that as a C string)
    cdef readonly Py_ssize_t size

    def __getbuffer__(self, Py_buffer *view, int flags):
        PyBuffer_FillInfo(view, self, self.p, self.size, 0, flags)

    def __releasebuffer__(self, Py_buffer *view):
        pass

    def __len__(self):
        return self.size

    def __dealloc__(self):
        free(self.p)


def memory(Py_ssize_t n):
    """``n`` bytes of uninitialized memory from malloc: a ``Memory``.  numpy asks the kernel for
    huge pages for each array of 4 MiB or more (madvise), and a first touch of each 2 MiB may
    then wait while the kernel finds (compacts) and clears one; memory a thread fills once, as
    the read-ahead's buffer, does better in the allocator's pages, mostly reused."""
    if n < 0:
        raise ValueError("internal: negative size")
    cdef Memory m = Memory.__new__(Memory)
    m.p = malloc(<size_t>n if n else 1)
    if m.p == NULL:
        raise MemoryError(f"cannot allocate {n} bytes")
    m.size = n
    return m


def map_file(bytes path, Py_ssize_t head_cap, Py_ssize_t min_map):
    """Open ``path`` (bytes, as ``os.fsencode`` gives), read up to ``head_cap`` bytes
    from its start and, when it is a regular file of at least ``min_map`` bytes, map it.

    Returns ``(FileMap or None, head bytes, file size)``; ``None`` for the map where
    this platform has no mmap or the file is short or not a regular file (the
    caller then reads it).  A map keeps the file open until its ``close_file``.  Raises OSError (FileNotFoundError, ...) as ``open`` does."""
    if b"\0" in path:
        raise ValueError("embedded null byte in the file path")
    if head_cap < 0 or min_map < 0:
        raise ValueError("internal: negative size")
    cdef FileMap fmap = FileMap.__new__(FileMap)
    cdef bytes head = PyBytes_FromStringAndSize(NULL, head_cap)
    cdef size_t got = 0
    cdef const char *cpath = path
    cdef unsigned char *hp = <unsigned char *><char *>head
    cdef int err
    with nogil:
        err = fm_map_file(cpath, hp, <size_t>head_cap, &got,
                          <size_t>min_map, &fmap.map)
    if err == FM_MAP_UNSUPPORTED:
        return None, b"", -1
    if err != 0:
        import os
        raise OSError(err, os.strerror(err), os.fsdecode(path))
    size = fmap.map.size
    return (fmap if fmap.map.addr != NULL else None), head[:got], size


cdef class ReadJob:
    """A read of a file into a buffer on a thread of its own (``start_read``); ``wait`` for
    the bytes needed so far (reading some itself), ``finish`` for the count and CRC-32.  The
    buffer is held until the read has ended; a job dropped unfinished is cancelled and waited
    for.  ``finish`` refuses to run while another thread waits (the job would be freed under
    it)."""
    cdef fm_read_job *job
    cdef Py_buffer view
    cdef readonly Py_ssize_t size, have
    cdef long long got
    cdef uint32_t crc
    cdef int err, waiting

    @property
    def finished(self):
        """Whether the read has ended and its thread is done (``finish`` has returned)."""
        return self.job == NULL

    def wait(self, Py_ssize_t upto):
        """The count of bytes read so far once it reaches ``upto`` or the read has ended
        (fewer then only when it ended short: ``finish`` says why).  The pieces it waits for
        that the job's thread has not taken yet are read on this thread."""
        cdef size_t got
        if upto <= self.have or self.job == NULL:
            return self.have
        self.waiting += 1
        try:
            with nogil:
                got = fm_read_job_wait(self.job, <size_t>upto)
        finally:
            self.waiting -= 1
        if <Py_ssize_t>got > self.have:
            self.have = <Py_ssize_t>got
        return self.have

    def finish(self, bint cancel=False):
        """Wait for the read to end, reading what is left on this thread too (``cancel``:
        stop it after the pieces being read); ``(bytes read, CRC-32 of them)``, the same at
        every call.  Raises OSError when a read failed."""
        cdef uint32_t crc = 0
        cdef int err = 0
        cdef long long got
        if self.waiting:
            raise RuntimeError("internal: a read job finished while another thread waits on it")
        if self.job != NULL:
            with nogil:
                got = fm_read_job_finish(self.job, cancel, &crc, &err)
            self.job = NULL
            PyBuffer_Release(&self.view)
            self.got, self.crc, self.err = got, crc, err
            if got >= 0:
                self.have = <Py_ssize_t>got
        if self.got < 0:
            import os
            raise OSError(self.err, os.strerror(self.err))
        return self.got, self.crc

    def __dealloc__(self):
        cdef uint32_t crc
        cdef int err
        if self.job != NULL:
            with nogil:
                fm_read_job_finish(self.job, 1, &crc, &err)
            self.job = NULL
            PyBuffer_Release(&self.view)


def start_read(int fd, object buf, long long offset, Py_ssize_t piece=0):
    """Start reading ``len(buf)`` bytes at ``offset`` of the file open as ``fd`` into ``buf``
    (writable, contiguous) on a thread of its own (C, without the interpreter), taking the zip
    CRC-32 as it goes: a ``ReadJob``.  The job takes ``fd`` and closes it when it finishes;
    when the job cannot start, OSError is raised and ``fd`` stays the caller's (ENOSYS: this
    platform has no POSIX threads and reads)."""
    if fd < 0 or offset < 0 or piece < 0:
        raise ValueError("internal: negative file descriptor, offset or piece")
    cdef ReadJob job = ReadJob.__new__(ReadJob)
    PyObject_GetBuffer(buf, &job.view, PyBUF_SIMPLE | PyBUF_WRITABLE)
    job.size = job.view.len
    with nogil:
        job.job = fm_read_job_start(fd, job.view.buf, <size_t>job.view.len, offset, <size_t>piece)
    if job.job == NULL:
        err = cerrno.errno
        PyBuffer_Release(&job.view)
        import os
        raise OSError(err, os.strerror(err) if err else "the read could not start")
    return job


def preallocate(int fd, long long nbytes):
    """Reserve the disk blocks of the file open as ``fd`` for ``nbytes`` bytes about to
    be written, leaving its size as it is (Linux; nothing elsewhere).  Returns 0, or the
    errno value of a failure: ENOSPC when the disk is full; file systems without
    preallocation give EOPNOTSUPP and the like, and the writes then allocate as usual."""
    if fd < 0:
        raise ValueError("internal: negative file descriptor")
    cdef int err
    with nogil:
        err = fm_preallocate(fd, nbytes)
    return err


def start_writeback(int fd, long long offset, long long nbytes):
    """Start writing ``nbytes`` bytes at ``offset`` of the file open as ``fd`` (already
    written through it) to the disk, without waiting (Linux; nothing elsewhere).  Returns
    0 or an errno value; a failure only means the final fsync does all the waiting."""
    if fd < 0 or offset < 0:
        raise ValueError("internal: negative file descriptor or offset")
    cdef int err
    with nogil:
        err = fm_start_writeback(fd, offset, nbytes)
    return err


def write_behind(int fd, object buf, long long offset, long long sent, long long kick, object crc=None,
                 Py_ssize_t piece=0):
    """Write ``buf`` (a contiguous buffer) at ``offset`` of the file open as ``fd``, ``piece``
    bytes at a time, continuing the zip CRC-32 ``crc`` over them when it is not None, and
    handing what was written to the disk whenever it runs ``kick`` bytes ahead of ``sent``;
    the GIL is released throughout.  Returns ``(sent, crc)``.  Raises OSError when a write
    fails (ENOSYS: this platform has no POSIX writes; the caller writes through Python)."""
    if fd < 0 or offset < 0 or sent < 0 or kick < 0 or piece < 0:
        raise ValueError("internal: negative file descriptor, offset, sent, kick or piece")
    cdef Py_buffer view
    PyObject_GetBuffer(buf, &view, PyBUF_SIMPLE)
    cdef uint32_t c = 0 if crc is None else <uint32_t>crc
    cdef uint32_t *cp = NULL if crc is None else &c
    cdef long long s = sent
    cdef int err
    try:
        with nogil:
            err = fm_write_behind(fd, view.buf, <size_t>view.len, offset, <size_t>piece, kick, &s, cp)
    finally:
        PyBuffer_Release(&view)
    if err:
        import os
        raise OSError(err, os.strerror(err))
    return s, (None if crc is None else c)


def remote_fs(int fd):
    """Whether the file open as ``fd`` lies on a network or FUSE file system (Linux; False
    elsewhere)."""
    if fd < 0:
        raise ValueError("internal: negative file descriptor")
    return fm_remote_fs(fd) != 0


def close_later(int fd):
    """Close the file descriptor ``fd`` on a thread of its own, without waiting (POSIX; the
    caller closes it itself elsewhere): what closing it costs -- the kernel freeing the pages
    and blocks of a file a save has just replaced -- is paid off the caller's path."""
    if fd < 0:
        raise ValueError("internal: negative file descriptor")
    with nogil:
        fm_close_later(fd)
