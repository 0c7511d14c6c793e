# GEMM, CPU dispatch and thread control (included by _engine.pyx).

def gemm(bint transa, bint transb, double alpha, A, B, double beta, C, act=None,
         double act_alpha=0.0, bias=None, Z=None, Aout=None, bint grad=False):
    """C = alpha * op(A) @ op(B) + beta * C in place; all C-contiguous 2-D, one float dtype.

    With ``act`` (an activation code) the product goes through a GEMM epilogue:
    forward (``grad=False``), C = act(C + bias) with Z receiving C + bias (both
    optional); backward (``grad=True``), C *= act'(.) taken from the layer's output
    ``Aout`` and pre-activation ``Z`` (both of C's shape)."""
    for name, a in (("A", A), ("B", B), ("C", C)):
        if not isinstance(a, np.ndarray) or a.ndim != 2 or not a.flags.c_contiguous:
            raise TypeError(f"{name} must be a C-contiguous 2-D numpy array")
    if not (A.dtype == B.dtype == C.dtype) or A.dtype not in (np.float32, np.float64):
        raise TypeError("A, B and C must share one dtype, float32 or float64")
    if not C.flags.writeable:
        raise ValueError("C must be writeable")
    cdef int64_t M = A.shape[1] if transa else A.shape[0]
    cdef int64_t K = A.shape[0] if transa else A.shape[1]
    cdef int64_t KB = B.shape[1] if transb else B.shape[0]
    cdef int64_t N = B.shape[0] if transb else B.shape[1]
    if K != KB or C.shape[0] != M or C.shape[1] != N:
        raise ValueError(f"shapes do not align: op(A) is {M}x{K}, op(B) is {KB}x{N}, C is {C.shape[0]}x{C.shape[1]}")
    cdef int t = cnp.PyArray_TYPE(<cnp.ndarray>C)
    if bias is not None and bias.shape != (N,):
        raise ValueError("bias must have one value per column of C")
    for name, a in (("Z", Z), ("Aout", Aout)):
        if a is not None and a.shape != C.shape:
            raise ValueError(f"{name} must have C's shape")
    if act is not None and grad and Aout is None:
        raise ValueError("the backward epilogue needs the layer output Aout")
    cdef int code = -1 if act is None else act
    cdef int64_t lda = A.shape[1], ldb = B.shape[1], ldc = C.shape[1]
    cdef void *pa = cnp.PyArray_DATA(<cnp.ndarray>A)
    cdef void *pb = cnp.PyArray_DATA(<cnp.ndarray>B)
    cdef void *pc = cnp.PyArray_DATA(<cnp.ndarray>C)
    cdef void *pbias = _ptr(bias, t, "bias")
    cdef void *pz = _ptr(Z, t, "Z")
    cdef void *pout = _ptr(Aout, t, "Aout")
    cdef bint f64 = t == _F64
    with nogil:
        if code < 0 and f64:
            fm_gemm_f64(transa, transb, M, N, K, alpha, <double *>pa, lda, <double *>pb, ldb,
                        beta, <double *>pc, ldc)
        elif code < 0:
            fm_gemm_f32(transa, transb, M, N, K, <float>alpha, <float *>pa, lda, <float *>pb, ldb,
                        <float>beta, <float *>pc, ldc)
        elif grad and f64:
            fm_gemm_act_grad_f64(code, act_alpha, <double *>pout, <double *>pz, transa, transb,
                                 M, N, K, alpha, <double *>pa, lda, <double *>pb, ldb, beta,
                                 <double *>pc, ldc)
        elif grad:
            fm_gemm_act_grad_f32(code, act_alpha, <float *>pout, <float *>pz, transa, transb,
                                 M, N, K, <float>alpha, <float *>pa, lda, <float *>pb, ldb,
                                 <float>beta, <float *>pc, ldc)
        elif f64:
            fm_gemm_bias_act_f64(code, act_alpha, <double *>pbias, <double *>pz, transa, transb,
                                 M, N, K, alpha, <double *>pa, lda, <double *>pb, ldb, beta,
                                 <double *>pc, ldc)
        else:
            fm_gemm_bias_act_f32(code, act_alpha, <float *>pbias, <float *>pz, transa, transb,
                                 M, N, K, <float>alpha, <float *>pa, lda, <float *>pb, ldb,
                                 <float>beta, <float *>pc, ldc)
    return C


def gemm_target():
    """The GEMM kernel family chosen for this CPU (or forced by set_gemm_target)."""
    return fm_gemm_target_name().decode()


def set_gemm_target(str name):
    """Force a GEMM target ('avx512', 'avx2', 'generic', ...) or 'auto'."""
    if fm_gemm_set_target(name.encode()) != 0:
        raise ValueError(f"GEMM target {name!r} is unknown or not supported by this CPU; "
                         f"available: {available_gemm_targets()}")


def available_gemm_targets():
    """Targets this CPU can run, best first."""
    current = gemm_target()
    found = []
    for name in ("avx512", "avx2", "neon", "generic"):
        if fm_gemm_set_target(name.encode()) == 0:
            found.append(name)
    fm_gemm_set_target(current.encode())
    return found


def get_num_threads():
    return fm_get_num_threads()


def set_num_threads(int n):
    fm_set_num_threads(n)


def have_openmp():
    return bool(fm_have_openmp())


def matmul_fast(a, b, out=None):
    """``a @ b`` when both are C-contiguous 2-D arrays of one float dtype (and
    ``out``, if given, matches): the few-microsecond path of ``ops.matmul``.
    Returns None when the arguments need the general path."""
    if not (cnp.PyArray_Check(a) and cnp.PyArray_Check(b)):
        return None
    cdef cnp.ndarray A = <cnp.ndarray>a
    cdef cnp.ndarray B = <cnp.ndarray>b
    cdef int t = cnp.PyArray_TYPE(A)
    if (t != _F32 and t != _F64) or cnp.PyArray_TYPE(B) != t or A.ndim != 2 or B.ndim != 2 \
            or not cnp.PyArray_IS_C_CONTIGUOUS(A) or not cnp.PyArray_IS_C_CONTIGUOUS(B):
        return None
    cdef int64_t M = A.shape[0], K = A.shape[1], N = B.shape[1]
    if B.shape[0] != K:
        return None
    cdef cnp.ndarray C
    if out is None:
        C = cnp.PyArray_EMPTY(2, [M, N], t, 0)
    else:
        if not cnp.PyArray_Check(out):
            return None
        C = <cnp.ndarray>out
        if cnp.PyArray_TYPE(C) != t or C.ndim != 2 or C.shape[0] != M or C.shape[1] != N \
                or not cnp.PyArray_IS_C_CONTIGUOUS(C) or not cnp.PyArray_ISWRITEABLE(C):
            return None
    cdef void *pa = cnp.PyArray_DATA(A)
    cdef void *pb = cnp.PyArray_DATA(B)
    cdef void *pc = cnp.PyArray_DATA(C)
    if M * N * K < 65536:   # tiny: releasing the GIL costs more than the product
        if t == _F64:
            fm_gemm_f64(0, 0, M, N, K, 1.0, <double *>pa, K, <double *>pb, N, 0.0, <double *>pc, N)
        else:
            fm_gemm_f32(0, 0, M, N, K, 1.0, <float *>pa, K, <float *>pb, N, 0.0, <float *>pc, N)
        return C
    with nogil:
        if t == _F64:
            fm_gemm_f64(0, 0, M, N, K, 1.0, <double *>pa, K, <double *>pb, N, 0.0, <double *>pc, N)
        else:
            fm_gemm_f32(0, 0, M, N, K, 1.0, <float *>pa, K, <float *>pb, N, 0.0, <float *>pc, N)
    return C
