# Single-kernel entry points (included by _engine.pyx).  The Python layer uses
# them for standalone losses and metrics; the tests compare each one with the
# NumPy reference in tests/reference.py.

cdef int _float_type(a) except -1:
    cdef int t = cnp.PyArray_TYPE(<cnp.ndarray?>a)
    if t != _F32 and t != _F64:
        raise TypeError("expected a float32 or float64 array")
    return t


def activation_forward(int act, double alpha, A, b=None, Z=None):
    """A = act(A + b) in place (rows of A); Z receives A + b when given."""
    cdef int t = _float_type(A)
    cdef void *pa = _ptr(A, t, "A")
    cdef void *pb = _ptr(b, t, "b")
    cdef void *pz = _ptr(Z, t, "Z")
    cdef int64_t rows = A.shape[0], cols = A.shape[1]
    if b is not None and b.shape[0] != cols:
        raise ValueError("bias length must equal the number of columns")
    if Z is not None and Z.shape != A.shape:
        raise ValueError("Z must have A's shape")
    with nogil:
        if t == _F64:
            fm_activation_forward_f64(act, alpha, <double *>pa, <double *>pz, <double *>pb, rows, cols)
        else:
            fm_activation_forward_f32(act, alpha, <float *>pa, <float *>pz, <float *>pb, rows, cols)
    return A


def activation_backward(int act, double alpha, A, Z, dA):
    """dA *= act'(.) in place, from the output A (and Z where needed)."""
    cdef int t = _float_type(A)
    cdef void *pa = _ptr(A, t, "A")
    cdef void *pz = _ptr(Z, t, "Z")
    cdef void *pd = _ptr(dA, t, "dA")
    cdef int64_t rows = A.shape[0], cols = A.shape[1]
    if dA.shape != A.shape or (Z is not None and Z.shape != A.shape):
        raise ValueError("A, Z and dA must share one shape")
    if act in (FM_ACT_GELU, FM_ACT_SWISH) and Z is None:
        raise ValueError("gelu and swish derivatives need Z")
    with nogil:
        if t == _F64:
            fm_activation_backward_f64(act, alpha, <double *>pa, <double *>pz, <double *>pd, rows, cols)
        else:
            fm_activation_backward_f32(act, alpha, <float *>pa, <float *>pz, <float *>pd, rows, cols)
    return dA


def loss_forward_backward(tuple loss, int act, A, Z, Y, y, w, double grad_scale=1.0):
    """(sum of weighted per-row losses, gradient, gradient_is_wrt_pre_activation)."""
    cdef fm_loss_spec spec
    _fill_loss(&spec, loss)
    cdef int t = _float_type(A)
    cdef int64_t rows = A.shape[0], cols = A.shape[1]
    for name, arr in (("Z", Z), ("Y", Y)):
        if arr is not None and arr.shape != A.shape:
            raise ValueError(f"{name} must have the predictions' shape {A.shape}")
    if y is not None and y.shape[0] != rows:
        raise ValueError("one sparse label per row is needed")
    if w is not None and w.shape[0] != rows:
        raise ValueError("one sample weight per row is needed")
    if Y is None and y is None:
        raise ValueError("targets are needed")
    g = np.empty_like(A)
    cdef void *pa = _ptr(A, t, "A")
    cdef void *pz = _ptr(Z, t, "Z")
    cdef void *pY = _ptr(Y, t, "Y")
    cdef void *py = _ptr(y, _I64, "y")
    cdef void *pw = _ptr(w, t, "w")
    cdef void *pg = _ptr(g, t, "g")
    cdef double total = 0
    cdef int pre = 0, status
    with nogil:
        if t == _F64:
            status = fm_loss_forward_backward_f64(&spec, act, <double *>pa, <double *>pz, <double *>pY,
                                                  <int64_t *>py, <double *>pw, rows, cols, grad_scale,
                                                  &total, <double *>pg, &pre)
        else:
            status = fm_loss_forward_backward_f32(&spec, act, <float *>pa, <float *>pz, <float *>pY,
                                                  <int64_t *>py, <float *>pw, rows, cols, grad_scale,
                                                  &total, <float *>pg, &pre)
    _raise_status(status)
    return total, g, bool(pre)


def metrics_update(list metrics, P, Y, y, w):
    """Weighted per-metric sums over the rows of P."""
    cdef fm_metric_spec mspecs[FM_MAX_METRICS]
    cdef int nm = _fill_metrics(mspecs, metrics)
    cdef double sums[FM_MAX_METRICS]
    cdef int t = _float_type(P)
    cdef int64_t rows = P.shape[0], cols = P.shape[1]
    if Y is not None and Y.shape != P.shape:
        raise ValueError("Y must have P's shape")
    if (y is not None and y.shape[0] != rows) or (w is not None and w.shape[0] != rows):
        raise ValueError("labels and weights need one entry per row")
    if Y is None and y is None:
        raise ValueError("targets are needed")
    cdef void *pp = _ptr(P, t, "P")
    cdef void *pY = _ptr(Y, t, "Y")
    cdef void *py = _ptr(y, _I64, "y")
    cdef void *pw = _ptr(w, t, "w")
    for i in range(nm):
        sums[i] = 0
    with nogil:
        if t == _F64:
            fm_metrics_update_f64(nm, mspecs, <double *>pp, <double *>pY, <int64_t *>py,
                                  <double *>pw, rows, cols, sums)
        else:
            fm_metrics_update_f32(nm, mspecs, <float *>pp, <float *>pY, <int64_t *>py,
                                  <float *>pw, rows, cols, sums)
    return [sums[i] for i in range(nm)]


cdef void _fill_optim(fm_optim *o, dict opt) except *:
    o.kind = opt["kind"]; o.beta1 = opt["beta1"]; o.beta2 = opt["beta2"]
    o.epsilon = opt["epsilon"]; o.rho = opt["rho"]; o.momentum = opt["momentum"]
    o.nesterov = opt["nesterov"]; o.centered = opt["centered"]; o.amsgrad = opt["amsgrad"]
    o.weight_decay = opt["weight_decay"]; o.clipnorm = opt["clipnorm"]
    o.clipvalue = opt["clipvalue"]; o.global_clipnorm = opt["global_clipnorm"]
    o.iterations = opt["iterations"]; o.u_product = opt["u_product"]


def optim_target():
    """The optimizer kernel family in use ('avx512' or 'generic': the portable loop)."""
    return fm_optim_target_name().decode()


def set_optim_target(str name):
    """Force an optimizer kernel target ('avx512', 'generic') or 'auto' (for tests)."""
    if fm_optim_set_target(name.encode()) != 0:
        raise ValueError(f"optimizer target {name!r} is unknown or not supported by this CPU; "
                         f"available: {available_optim_targets()}")


def available_optim_targets():
    """Optimizer kernel targets this CPU can run, best first."""
    current = optim_target()
    found = [name for name in ("avx512", "generic") if fm_optim_set_target(name.encode()) == 0]
    fm_optim_set_target(current.encode())
    return found


def optimizer_step(dict opt, list variables, params, grads, slots, double lr):
    """One optimizer step over flat params/grads/slots (grads are modified)."""
    cdef fm_optim o
    _fill_optim(&o, opt)
    cdef int t = _float_type(params)
    cdef int nv = len(variables)
    cdef int64_t n = params.shape[0]
    if grads.shape[0] != n or slots.shape[0] < 3 * n:
        raise ValueError("grads must match params and slots must hold 3 * n_params")
    cdef fm_var *vt = <fm_var *>malloc(sizeof(fm_var) * (nv if nv else 1))
    if vt == NULL:
        raise MemoryError()
    for i, (off, size, l1, l2) in enumerate(variables):
        if off < 0 or off + size > n:
            free(vt)
            raise ValueError("variable segment out of range")
        vt[i].off = off; vt[i].size = size; vt[i].l1 = l1; vt[i].l2 = l2
    cdef void *pp = _ptr(params, t, "params")
    cdef void *pg = _ptr(grads, t, "grads")
    cdef void *ps = _ptr(slots, t, "slots")
    with nogil:
        if t == _F64:
            fm_optimizer_step_f64(&o, nv, vt, <double *>pp, <double *>pg, <double *>ps, n, lr, 0)
        else:
            fm_optimizer_step_f32(&o, nv, vt, <float *>pp, <float *>pg, <float *>ps, n, lr, 0)
    free(vt)
    opt["iterations"] = o.iterations
    opt["u_product"] = o.u_product
    return params
