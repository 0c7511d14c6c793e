# cython: language_level=3
"""The only place Python meets C.

Wrappers check dtype, contiguity and shape of every array before handing raw
pointers to the kernels in ``csrc/`` (the Python layer has already converted
user input; these checks guard against internal misuse and cost nanoseconds),
release the GIL around every kernel call, and turn C status codes into Python
exceptions.  Arrays are reached through the NumPy C API rather than typed
memoryviews: single-row ``predict`` must cost only a few microseconds.
"""
import numpy as np
cimport numpy as cnp
from libc.stdint cimport int64_t, uint64_t
from libc.stdlib cimport malloc, free
from libc.string cimport memcpy, memset

cnp.import_array()



cdef int _F32 = cnp.NPY_FLOAT32
cdef int _F64 = cnp.NPY_FLOAT64
cdef int _I64 = cnp.NPY_INT64


cdef inline void *_ptr(object a, int typenum, str name) except? NULL:
    """Data pointer of a C-contiguous array of the given type, NULL for None."""
    if a is None:
        return NULL
    cdef cnp.ndarray arr = <cnp.ndarray?>a
    if cnp.PyArray_TYPE(arr) != typenum or not cnp.PyArray_IS_C_CONTIGUOUS(arr):
        raise TypeError(f"internal: {name} must be a C-contiguous array of type number {typenum}")
    return cnp.PyArray_DATA(arr)


cdef inline int64_t _rows(object a):
    return (<cnp.ndarray>a).shape[0] if (<cnp.ndarray>a).ndim > 0 else 1


cdef _raise_status(int status):
    if status == FM_OK:
        return
    if status == FM_ERR_NOMEM:
        raise MemoryError("fastmlp: the engine could not allocate its buffers")
    if status == FM_ERR_LABEL:
        raise ValueError("a sparse label is outside [0, n_classes)")
    raise RuntimeError(f"fastmlp engine error {status}")


cdef void _fill_loss(fm_loss_spec *spec, tuple loss):
    spec.kind = loss[0]
    spec.from_logits = loss[1]
    spec.label_smoothing = loss[2]
    spec.delta = loss[3]
    spec.sum_reduction = loss[4] if len(loss) > 4 else 0


cdef int _fill_metrics(fm_metric_spec *specs, list metrics) except -1:
    if len(metrics) > FM_MAX_METRICS:
        raise ValueError(f"at most {FM_MAX_METRICS} compiled metrics are supported; got {len(metrics)}")
    for i, spec in enumerate(metrics):
        specs[i].kind = spec[0]
        specs[i].param = spec[1]
        specs[i].class_id = spec[2] if len(spec) > 2 else -1
        specs[i].state = <double *>_ptr(spec[3], _F64, "metric state") if len(spec) > 3 else NULL
    return len(metrics)


include "_ops.pxi"
include "_kernels.pxi"
include "_checksum.pxi"
include "_format.pxi"
include "_filemap.pxi"


def all_finite(a):
    """True when a C-contiguous float32/float64 array holds no NaN or infinity
    (one pass, no temporary array)."""
    cdef int t = cnp.PyArray_TYPE(<cnp.ndarray?>a)
    if not cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>a) or (t != _F32 and t != _F64):
        return bool(np.isfinite(a).all())
    cdef void *p = cnp.PyArray_DATA(<cnp.ndarray>a)
    cdef int64_t n = cnp.PyArray_SIZE(<cnp.ndarray>a)
    cdef int ok
    with nogil:
        ok = fm_all_finite_f64(<double *>p, n) if t == _F64 else fm_all_finite_f32(<float *>p, n)
    return bool(ok)


def weight_views(params, list segments):
    """Views into the flat parameter vector ``params`` (a 1-D C-contiguous array),
    one per ``(element offset, shape tuple)`` of ``segments``: what
    ``params[off:off + size].reshape(shape)`` gives, in one call."""
    cdef cnp.ndarray flat = <cnp.ndarray?>params
    if cnp.PyArray_NDIM(flat) != 1 or not cnp.PyArray_IS_C_CONTIGUOUS(flat):
        raise TypeError("internal: params must be a 1-D C-contiguous array")
    cdef cnp.npy_intp dims[32]
    cdef Py_ssize_t nd, k
    cdef int64_t off, size, n = cnp.PyArray_DIM(flat, 0)
    cdef Py_ssize_t item = cnp.PyArray_ITEMSIZE(flat)
    cdef char *base = <char *>cnp.PyArray_DATA(flat)
    cdef int typenum = cnp.PyArray_TYPE(flat)
    cdef bint writeable = cnp.PyArray_ISWRITEABLE(flat)
    cdef cnp.ndarray view
    cdef list out = []
    cdef tuple shape
    for segment in segments:
        off, shape = segment
        nd = len(shape)
        if nd > 32:
            raise ValueError("internal: too many dimensions")
        size = 1
        for k in range(nd):
            dims[k] = <cnp.npy_intp>shape[k]
            if dims[k] < 0:
                raise ValueError("internal: negative dimension")
            size *= dims[k]
        if off < 0 or size > n or off > n - size:
            raise ValueError(f"internal: segment at {off} of {size} elements is outside the {n}-element vector")
        view = cnp.PyArray_SimpleNewFromData(<int>nd, dims, typenum, base + off * item)
        if not writeable:
            cnp.PyArray_CLEARFLAGS(view, cnp.NPY_ARRAY_WRITEABLE)
        cnp.Py_INCREF(flat)   # the reference PyArray_SetBaseObject steals
        cnp.PyArray_SetBaseObject(view, flat)
        out.append(view)
    return out


def permutation(uint64_t seed, uint64_t epoch, int64_t n):
    """The shuffle order of one epoch, from the counter-based generator."""
    out = np.empty(n, dtype=np.int64)
    cdef int64_t *p = <int64_t *>cnp.PyArray_DATA(out)
    with nogil:
        fm_permutation(seed, epoch, n, p)
    return out


cdef tuple _sums(fm_stats *stats, int nm):
    return stats.loss_sum, stats.rows, stats.weight_sum, [stats.metric_sum[i] for i in range(nm)]


cdef class Network:
    """A layer table over a flat parameter vector (owned by Python)."""
    cdef fm_net *net
    cdef bint busy            # a training call is running (the GIL is released inside)
    cdef readonly bint f64
    cdef readonly int64_t n_in, n_out, n_params
    cdef int typenum

    def __cinit__(self, list layers, list variables, int64_t n_params, bint f64):
        cdef int nl = len(layers), nv = len(variables)
        if nl == 0:
            raise ValueError("a network needs at least one layer")
        cdef fm_layer *lt = <fm_layer *>malloc(sizeof(fm_layer) * nl)
        cdef fm_var *vt = <fm_var *>malloc(sizeof(fm_var) * (nv if nv else 1))
        if lt == NULL or vt == NULL:
            free(lt); free(vt)
            raise MemoryError()
        try:
            for i, (kind, n_in, n_out, act, alpha, w_off, b_off, rate, seed, aux_off, var_off, momentum,
                    epsilon, frozen) in enumerate(layers):
                lt[i].kind = kind; lt[i].n_in = n_in; lt[i].n_out = n_out
                lt[i].activation = act; lt[i].act_alpha = alpha
                lt[i].w_off = w_off; lt[i].b_off = b_off; lt[i].rate = rate; lt[i].seed = seed
                lt[i].aux_off = aux_off; lt[i].var_off = var_off
                lt[i].momentum = momentum; lt[i].epsilon = epsilon; lt[i].frozen = frozen
            for i, (off, size, l1, l2) in enumerate(variables):
                vt[i].off = off; vt[i].size = size; vt[i].l1 = l1; vt[i].l2 = l2
            self.net = fm_net_create(f64, nl, lt, nv, vt, n_params)
        finally:
            free(lt); free(vt)
        if self.net == NULL:
            raise MemoryError("fastmlp: could not create the network")
        self.f64 = f64
        self.typenum = _F64 if f64 else _F32
        self.n_in = layers[0][1]
        self.n_out = layers[nl - 1][2]
        self.n_params = n_params

    cdef _enter(self):
        """Training calls use the network's workspace with the GIL released: refuse a
        second one from another thread instead of sharing the buffers."""
        if self.busy:
            raise RuntimeError("this model is already training in another thread; fastmlp trains "
                               "one batch stream per model at a time")
        self.busy = True

    def __dealloc__(self):
        if self.net != NULL:
            fm_net_free(self.net)
            self.net = NULL

    def predict(self, params, X, out):
        """out[:] = network(X) in inference mode (no dropout)."""
        cdef void *pp = _ptr(params, self.typenum, "params")
        cdef void *px = _ptr(X, self.typenum, "X")
        cdef void *po = _ptr(out, self.typenum, "out")
        cdef int64_t n = (<cnp.ndarray>X).shape[0]
        cdef int status = 0
        if (<cnp.ndarray>X).shape[1] != self.n_in or (<cnp.ndarray>out).shape[0] != n:
            raise ValueError("internal: predict shapes")
        if n > 0:
            with nogil:
                if self.f64:
                    fm_predict_f64(self.net, <double *>pp, <double *>px, n, <double *>po, &status)
                else:
                    fm_predict_f32(self.net, <float *>pp, <float *>px, n, <float *>po, &status)
        _raise_status(status)
        return out

    def loss_and_grads(self, params, X, Y, y, w, tuple loss, uint64_t seed=0, int64_t step=0,
                       bint training=False):
        """Loss (with regularization) and a copy of the flat gradient for one batch."""
        cdef fm_loss_spec spec
        _fill_loss(&spec, loss)
        cdef void *pp = _ptr(params, self.typenum, "params")
        cdef void *px = _ptr(X, self.typenum, "X")
        cdef void *pY = _ptr(Y, self.typenum, "Y")
        cdef void *py = _ptr(y, _I64, "y")
        cdef void *pw = _ptr(w, self.typenum, "w")
        cdef int64_t n = _rows(X)
        cdef double value = 0
        cdef int status
        self._enter()
        try:
            with nogil:
                if self.f64:
                    status = fm_loss_and_grads_f64(self.net, <double *>pp, <double *>px,
                                                   <double *>pY, <int64_t *>py, <double *>pw, n,
                                                   &spec, seed, step, training, &value)
                else:
                    status = fm_loss_and_grads_f32(self.net, <float *>pp, <float *>px, <float *>pY,
                                                   <int64_t *>py, <float *>pw, n, &spec, seed,
                                                   step, training, &value)
        finally:
            self.busy = False
        _raise_status(status)
        return value, self.grads()

    def grads(self):
        """A copy of the flat gradient of the last step."""
        dtype = np.float64 if self.f64 else np.float32
        out = np.empty(self.n_params, dtype=dtype)
        cdef size_t nbytes = self.n_params * (8 if self.f64 else 4)
        if fm_net_grads(self.net) == NULL:
            out[...] = 0
        elif nbytes:
            memcpy(cnp.PyArray_DATA(out), fm_net_grads(self.net), nbytes)
        return out

    def evaluate(self, params, X, Y, y, w, int64_t batch_size, tuple loss, list metrics):
        """Sums over all rows: (loss_sum, rows, weight_sum, [metric sums])."""
        cdef fm_loss_spec spec
        cdef fm_metric_spec mspecs[FM_MAX_METRICS]
        cdef fm_stats stats
        _fill_loss(&spec, loss)
        cdef int nm = _fill_metrics(mspecs, metrics)
        cdef void *pp = _ptr(params, self.typenum, "params")
        cdef void *px = _ptr(X, self.typenum, "X")
        cdef void *pY = _ptr(Y, self.typenum, "Y")
        cdef void *py = _ptr(y, _I64, "y")
        cdef void *pw = _ptr(w, self.typenum, "w")
        cdef int64_t n = _rows(X)
        cdef int status
        memset(&stats, 0, sizeof(stats))
        with nogil:
            if self.f64:
                status = fm_evaluate_f64(self.net, <double *>pp, <double *>px, <double *>pY,
                                         <int64_t *>py, <double *>pw, n, batch_size, &spec, nm,
                                         mspecs, &stats)
            else:
                status = fm_evaluate_f32(self.net, <float *>pp, <float *>px, <float *>pY,
                                         <int64_t *>py, <float *>pw, n, batch_size, &spec, nm,
                                         mspecs, &stats)
        _raise_status(status)
        return _sums(&stats, nm)

    def train(self, params, slots, dict opt, X, Y, y, w, order, int64_t batch_size,
              int64_t batch_begin, int64_t batch_end, lrs, tuple loss, list metrics,
              uint64_t seed):
        """Run batches [batch_begin, batch_end) of an epoch; updates params, slots and
        opt['iterations'] / opt['u_product'] in place.  Returns the sums like evaluate."""
        cdef fm_loss_spec spec
        cdef fm_metric_spec mspecs[FM_MAX_METRICS]
        cdef fm_stats stats
        cdef fm_optim o
        _fill_loss(&spec, loss)
        cdef int nm = _fill_metrics(mspecs, metrics)
        _fill_optim(&o, opt)
        cdef void *pp = _ptr(params, self.typenum, "params")
        cdef void *ps = _ptr(slots, self.typenum, "slots")
        cdef void *px = _ptr(X, self.typenum, "X")
        cdef void *pY = _ptr(Y, self.typenum, "Y")
        cdef void *py = _ptr(y, _I64, "y")
        cdef void *pw = _ptr(w, self.typenum, "w")
        cdef void *po = _ptr(order, _I64, "order")
        cdef void *pl = _ptr(lrs, _F64, "lrs")
        if _rows(lrs) < batch_end - batch_begin:
            raise ValueError("internal: one learning rate per batch is needed")
        cdef int64_t n = _rows(X)
        cdef int status
        memset(&stats, 0, sizeof(stats))
        if slots is None or (<cnp.ndarray>slots).shape[0] < 3 * self.n_params:
            raise ValueError("internal: optimizer slots are missing or too small for this network")
        self._enter()
        try:
            with nogil:
                if self.f64:
                    status = fm_train_f64(self.net, <double *>pp, <double *>ps, &o, <double *>px,
                                          <double *>pY, <int64_t *>py, <double *>pw, <int64_t *>po,
                                          n, batch_size, batch_begin, batch_end, <double *>pl, &spec,
                                          nm, mspecs, seed, &stats)
                else:
                    status = fm_train_f32(self.net, <float *>pp, <float *>ps, &o, <float *>px,
                                          <float *>pY, <int64_t *>py, <float *>pw, <int64_t *>po,
                                          n, batch_size, batch_begin, batch_end, <double *>pl, &spec,
                                          nm, mspecs, seed, &stats)
        finally:
            self.busy = False
        opt["iterations"] = o.iterations
        opt["u_product"] = o.u_product
        _raise_status(status)
        return _sums(&stats, nm)
