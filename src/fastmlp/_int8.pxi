# Int8 Dense inference (csrc/qgemm.h): packed int8 kernels, the int8 forward and
# its target dispatch.  Included by _engine.pyx.

cdef class Int8Dense:
    """An int8 Dense kernel packed for the int8 forward: ``kernel`` (n_in, n_out) int8
    in [-127, 127] and ``scale`` (n_out,) float32, one per output unit (the kernel's
    values are ``kernel * scale``)."""
    cdef fm_q8_dense *q
    cdef readonly int64_t n_in, n_out

    def __cinit__(self, kernel, scale):
        k = np.ascontiguousarray(kernel)
        s = np.ascontiguousarray(scale)
        if k.dtype != np.int8 or k.ndim != 2:
            raise TypeError(f"an int8 kernel must be a 2-D int8 array; got {k.dtype} of shape {k.shape}")
        if s.dtype != np.float32 or s.shape != (k.shape[1],):
            raise TypeError(f"an int8 kernel's scale must be float32 of shape ({k.shape[1]},); "
                            f"got {s.dtype} of shape {s.shape}")
        if k.shape[0] < 1 or k.shape[1] < 1 or k.shape[0] > FM_Q8_MAX_IN:
            raise ValueError(f"int8 inference needs 1 to {FM_Q8_MAX_IN} inputs and at least one unit; "
                             f"got a kernel of shape {k.shape}")
        if (k == -128).any():
            raise ValueError("an int8 kernel's values must lie in [-127, 127] (symmetric quantization); "
                             "it holds -128")
        cdef cnp.ndarray ka = k, sa = s
        cdef int status = FM_OK
        cdef int64_t n_in = k.shape[0], n_out = k.shape[1]
        self.q = fm_q8_dense_create(<const int8_t *>cnp.PyArray_DATA(ka), <const float *>cnp.PyArray_DATA(sa),
                                    n_in, n_out, &status)
        if self.q == NULL:
            _raise_status(status)
            raise ValueError("internal: the engine refused the int8 kernel")
        self.n_in, self.n_out = n_in, n_out

    def update(self, kernel, scale):
        """Re-pack with new values of the same shapes (the networks using this kernel see them)."""
        k = np.ascontiguousarray(kernel)
        sc = np.ascontiguousarray(scale)
        if k.dtype != np.int8 or k.shape != (self.n_in, self.n_out) or sc.dtype != np.float32 or \
                sc.shape != (self.n_out,):
            raise ValueError(f"expected an int8 kernel of shape ({self.n_in}, {self.n_out}) and float32 scales "
                             f"of shape ({self.n_out},); got {k.dtype} {k.shape} and {sc.dtype} {sc.shape}")
        cdef cnp.ndarray ka = k, sa = sc
        if fm_q8_dense_update(self.q, <const int8_t *>cnp.PyArray_DATA(ka),
                              <const float *>cnp.PyArray_DATA(sa)) != FM_OK:
            raise ValueError("an int8 kernel's values must lie in [-127, 127] (symmetric quantization); "
                             "it holds -128")

    def __dealloc__(self):
        if self.q != NULL:
            fm_q8_dense_free(self.q)
            self.q = NULL

    def forward(self, x, bias=None):
        """The linear output ``(rows, n_out)`` float32 of the int8 forward for ``x``
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
            status = fm_q8_dense_forward(self.q, <const float *>cnp.PyArray_DATA(xa), self.n_in, rows, bp,
                                         <float *>cnp.PyArray_DATA(out))
        _raise_status(status)
        return out


def int8_quantize_rows(x):
    """The int8 forward's activation quantization of ``x`` (rows, n_in) float32, as the
    current target computes it: ``(q int8 (rows, n_in), scale float32 (rows,))``."""
    xs = np.ascontiguousarray(x, dtype=np.float32)
    if xs.ndim != 2 or xs.shape[1] < 1:
        raise ValueError(f"expected a 2-D array with at least one column; got shape {xs.shape}")
    cdef int64_t rows = xs.shape[0], n_in = xs.shape[1]
    cdef cnp.ndarray xa = xs
    cdef cnp.ndarray q = np.empty((rows, n_in), dtype=np.int8)
    cdef cnp.ndarray s = np.empty(rows, dtype=np.float32)
    fm_q8_quantize_rows(<const float *>cnp.PyArray_DATA(xa), n_in, rows, n_in,
                        <int8_t *>cnp.PyArray_DATA(q), <float *>cnp.PyArray_DATA(s))
    return q, s


def int8_target():
    """The int8 kernel family chosen for this CPU (or forced by set_int8_target)."""
    return fm_q8_target_name().decode()


def set_int8_target(str name):
    """Force an int8 target ('avx512vnni', 'avx2', 'generic') or 'auto'."""
    if fm_q8_set_target(name.encode()) != 0:
        raise ValueError(f"int8 target {name!r} is unknown or not supported by this CPU; "
                         f"available: {available_int8_targets()}")


def available_int8_targets():
    """Int8 targets this CPU can run, best first."""
    current = int8_target()
    found = [name for name in ("avx512vnni", "avx2", "generic") if fm_q8_set_target(name.encode()) == 0]
    fm_q8_set_target(current.encode())
    return found
