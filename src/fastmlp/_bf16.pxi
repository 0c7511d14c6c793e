# bfloat16 Dense inference (csrc/bgemm.h): kernels rounded to bfloat16 and
# packed, the bfloat16 forward and its target dispatch.  Included by _engine.pyx.

cdef class BF16Dense:
    """A Dense kernel rounded to bfloat16 and packed for the bfloat16 forward, from
    its float32 master ``kernel`` (n_in, n_out)."""
    cdef fm_bf16_dense *b
    cdef readonly int64_t n_in, n_out

    def __cinit__(self, kernel):
        k = np.ascontiguousarray(kernel)
        if k.dtype != np.float32 or k.ndim != 2:
            raise TypeError(f"a bfloat16 kernel is made from a 2-D float32 array; got {k.dtype} of shape "
                            f"{k.shape}")
        if k.shape[0] < 1 or k.shape[1] < 1:
            raise ValueError(f"a bfloat16 kernel needs at least one input and one unit; got shape {k.shape}")
        cdef cnp.ndarray ka = k
        cdef int status = FM_OK
        cdef int64_t n_in = k.shape[0], n_out = k.shape[1]
        self.b = fm_bf16_dense_create(<const float *>cnp.PyArray_DATA(ka), n_in, n_out, &status)
        if self.b == NULL:
            _raise_status(status)
            raise ValueError(f"internal: the engine refused a bfloat16 kernel of shape {k.shape}")
        self.n_in, self.n_out = n_in, n_out

    def update(self, kernel):
        """Round and re-pack new float32 values of the same shape (the networks using
        this kernel see them)."""
        k = np.ascontiguousarray(kernel)
        if k.dtype != np.float32 or k.shape != (self.n_in, self.n_out):
            raise ValueError(f"expected a float32 kernel of shape ({self.n_in}, {self.n_out}); got {k.dtype} "
                             f"{k.shape}")
        cdef cnp.ndarray ka = k
        fm_bf16_dense_update(self.b, <const float *>cnp.PyArray_DATA(ka))

    def __dealloc__(self):
        if self.b != NULL:
            fm_bf16_dense_free(self.b)
            self.b = NULL

    def forward(self, x, bias=None):
        """The linear output ``(rows, n_out)`` float32 of the bfloat16 forward for ``x``
        (rows, n_in) float32; ``bias`` (n_out,) float32 or None."""
        xs = np.ascontiguousarray(x, dtype=np.float32)
        if xs.ndim != 2 or xs.shape[1] != self.n_in:
            raise ValueError(f"expected inputs of shape (rows, {self.n_in}); got {xs.shape}")
        cdef cnp.ndarray xa = xs
        cdef cnp.ndarray ba
        cdef const float *bp = NULL
        if bias is not None:
            bs = np.ascontiguousarray(bias, dtype=np.float32)
            if bs.shape != (self.n_out,):
                raise ValueError(f"expected a bias of shape ({self.n_out},); got {bs.shape}")
            ba = bs
            bp = <const float *>cnp.PyArray_DATA(ba)
        cdef int64_t rows = xs.shape[0]
        cdef cnp.ndarray out = np.empty((rows, self.n_out), dtype=np.float32)
        cdef int status = FM_OK
        with nogil:
            status = fm_bf16_dense_forward(self.b, <const float *>cnp.PyArray_DATA(xa), self.n_in, rows, bp,
                                           <float *>cnp.PyArray_DATA(out))
        _raise_status(status)
        return out


def bf16_round(x):
    """``x`` (rows, n) float32 rounded to bfloat16 as the current target computes it:
    the bit patterns, uint16 (rows, n)."""
    xs = np.ascontiguousarray(x, dtype=np.float32)
    if xs.ndim != 2:
        raise ValueError(f"expected a 2-D array; got shape {xs.shape}")
    cdef int64_t rows = xs.shape[0], n = xs.shape[1]
    cdef cnp.ndarray xa = xs
    cdef cnp.ndarray out = np.empty((rows, n), dtype=np.uint16)
    if rows and n:
        fm_bf16_round_rows(<const float *>cnp.PyArray_DATA(xa), n, rows, n, <uint16_t *>cnp.PyArray_DATA(out))
    return out


def bf16_target():
    """The bfloat16 kernel family chosen for this CPU (or forced by set_bf16_target)."""
    return fm_bf16_target_name().decode()


def set_bf16_target(str name):
    """Force a bfloat16 target ('avx512bf16', 'avx2', 'generic') or 'auto'."""
    if fm_bf16_set_target(name.encode()) != 0:
        raise ValueError(f"bfloat16 target {name!r} is unknown or not supported by this CPU; "
                         f"available: {available_bf16_targets()}")


def available_bf16_targets():
    """bfloat16 targets this CPU can run, best first."""
    current = bf16_target()
    found = [name for name in ("avx512bf16", "avx2", "generic") if fm_bf16_set_target(name.encode()) == 0]
    fm_bf16_set_target(current.encode())
    return found
