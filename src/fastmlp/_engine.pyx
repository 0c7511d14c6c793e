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
from libc.stdint cimport int8_t, int32_t, int64_t, uint16_t, uint64_t
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


# The engine's layer kinds and activations by name: the codes are written in one
# place, the enums of csrc/fastmlp.h, and the names come from the engine too
# (each kind's table in csrc/kinds/).  src/fastmlp/layers/registry.py maps layer
# classes to kinds; activations.py marks its functions with their codes.
KINDS = {fm_kind_name(k).decode(): k for k in range(FM_KIND_COUNT)}
ACTIVATIONS = {fm_activation_name(a).decode(): a for a in range(FM_ACT_COUNT)}
MAX_INPUTS, MAX_OUTPUTS, MAX_METRICS = FM_MAX_INPUTS, FM_MAX_OUTPUTS, FM_MAX_METRICS


cdef void _fill_loss(fm_loss_spec *spec, tuple loss):
    spec.kind = loss[0]
    spec.from_logits = loss[1]
    spec.label_smoothing = loss[2]
    spec.delta = loss[3]
    spec.sum_reduction = loss[4] if len(loss) > 4 else 0
    spec.weight = loss[5] if len(loss) > 5 else 1.0


cdef int _fill_metrics(fm_metric_spec *specs, list metrics) except -1:
    if len(metrics) > FM_MAX_METRICS:
        raise ValueError(f"at most {FM_MAX_METRICS} compiled metrics are supported; got {len(metrics)}")
    for i, spec in enumerate(metrics):
        specs[i].kind = spec[0]
        specs[i].param = spec[1]
        specs[i].class_id = spec[2] if len(spec) > 2 else -1
        specs[i].state = <double *>_ptr(spec[3], _F64, "metric state") if len(spec) > 3 else NULL
        specs[i].output = spec[4] if len(spec) > 4 else 0
        # optional: a dict of the second parameter, the thresholds and the loss
        extra = spec[5] if len(spec) > 5 else None
        specs[i].param2 = 0.0
        specs[i].weighted = 1
        specs[i].thresholds = NULL
        specs[i].n_thresholds = 0
        _fill_loss(&specs[i].loss, (0, 0, 0.0, 1.0))
        if extra:
            specs[i].param2 = extra.get("param2", 0.0)
            if extra.get("thresholds") is not None:
                specs[i].thresholds = <const double *>_ptr(extra["thresholds"], _F64, "metric thresholds")
                specs[i].n_thresholds = len(extra["thresholds"])
            specs[i].weighted = int(extra.get("weighted", 1))
            if extra.get("loss") is not None:
                _fill_loss(&specs[i].loss, tuple(extra["loss"]))
    return len(metrics)


include "_ops.pxi"
include "_kernels.pxi"
include "_checksum.pxi"
include "_format.pxi"
include "_filemap.pxi"
include "_int8.pxi"
include "_bf16.pxi"


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


def raise_status(int status):
    """Raise the Python exception of an engine status (nothing for 0)."""
    _raise_status(status)


def permutation(uint64_t seed, uint64_t epoch, int64_t n):
    """The shuffle order of one epoch, from the counter-based generator."""
    out = np.empty(n, dtype=np.int64)
    cdef int64_t *p = <int64_t *>cnp.PyArray_DATA(out)
    with nogil:
        fm_permutation(seed, epoch, n, p)
    return out


cdef tuple _sums(fm_stats *stats, int nm, int no):
    return (stats.loss_sum, stats.rows, stats.weight_sum, [stats.metric_sum[i] for i in range(nm)],
            [stats.output_loss_sum[k] for k in range(no)])


cdef class _Arrays:
    """Pointers of a list of arrays (or Nones) for one engine call; keeps them alive."""
    cdef void **p
    cdef list keep
    cdef int n

    def __cinit__(self, list arrays, int typenum, str what, int64_t rows, widths=None):
        self.n = len(arrays)
        self.keep = arrays
        self.p = <void **>malloc(sizeof(void *) * (self.n if self.n else 1))
        if self.p == NULL:
            raise MemoryError()
        cdef cnp.ndarray arr
        for i, a in enumerate(arrays):
            self.p[i] = _ptr(a, typenum, what)
            if a is None:
                continue
            arr = <cnp.ndarray>a
            if _rows(arr) != rows:
                raise ValueError(f"internal: {what} {i} has {_rows(arr)} rows, not {rows}")
            if widths is not None and (arr.ndim != 2 or arr.shape[1] != widths[i]):
                raise ValueError(f"internal: {what} {i} must be 2-D with {widths[i]} columns")

    def __dealloc__(self):
        free(self.p)


cdef void _fill_data(fm_data *d, _Arrays X, _Arrays Y, _Arrays y, void *w):
    d.X = <const void *const *>X.p
    d.Y = <const void *const *>Y.p
    d.y = <const int64_t *const *>y.p
    d.w = w


cdef list _as_list(x, int n):
    """One array per input/output: a list as it is, a single array (or None) for a one-input/-output net."""
    if isinstance(x, (list, tuple)):
        if len(x) != n:
            raise ValueError(f"internal: expected {n} arrays, got {len(x)}")
        return list(x)
    if n != 1:
        raise ValueError(f"internal: expected a list of {n} arrays")
    return [x]


cdef class Network:
    """A node graph over a flat parameter vector (owned by Python).

    ``plan`` is the model's typed plan (``fastmlp.models.plan.Plan``): its ``nodes``
    (each with kind, inputs, n_out, activation, act_alpha, w_off, b_off, aux_off,
    var_off, rate, seed, stream, momentum, epsilon, frozen), ``outputs`` (node
    indices), ``variables`` (each with off, size, l1, l2) and ``n_params``.
    Inputs, targets and losses are lists with one entry per model input / output
    (a single array or loss tuple stands for a one-element list)."""
    cdef fm_net *net
    cdef bint busy            # a training call is running (the GIL is released inside)
    cdef readonly bint f64
    cdef readonly int n_inputs, n_outputs
    cdef readonly int64_t n_params
    cdef readonly list input_widths, output_widths
    cdef int typenum
    cdef dict int8            # node -> Int8Dense the engine reads (kept alive here)
    cdef dict bf16            # node -> BF16Dense the engine reads (kept alive here)

    def __cinit__(self, plan, bint f64):
        nodes, outputs, variables = list(plan.nodes), list(plan.outputs), list(plan.variables)
        cdef int nn = len(nodes), nv = len(variables), no = len(outputs)
        cdef int64_t ne = sum(len(nd.inputs) for nd in nodes)
        if nn == 0 or nn > FM_MAX_NODES:
            raise ValueError(f"a network needs 1 to {FM_MAX_NODES} nodes; got {nn}")
        if no == 0 or no > FM_MAX_OUTPUTS:
            raise ValueError(f"a network needs 1 to {FM_MAX_OUTPUTS} outputs; got {no}")
        cdef fm_node *nt = <fm_node *>malloc(sizeof(fm_node) * nn)
        cdef int32_t *et = <int32_t *>malloc(sizeof(int32_t) * (ne if ne else 1))
        cdef int32_t ot[FM_MAX_OUTPUTS]
        cdef fm_var *vt = <fm_var *>malloc(sizeof(fm_var) * (nv if nv else 1))
        cdef int64_t e = 0
        cdef int status = FM_OK
        if nt == NULL or et == NULL or vt == NULL:
            free(nt); free(et); free(vt)
            raise MemoryError()
        try:
            for i, nd in enumerate(nodes):
                nt[i].kind = nd.kind; nt[i].n_inputs = len(nd.inputs); nt[i].in_begin = e
                for p in nd.inputs:
                    et[e] = p
                    e += 1
                nt[i].n_out = nd.n_out; nt[i].activation = nd.activation; nt[i].act_alpha = nd.act_alpha
                nt[i].w_off = nd.w_off; nt[i].b_off = nd.b_off; nt[i].aux_off = nd.aux_off
                nt[i].var_off = nd.var_off; nt[i].rate = nd.rate; nt[i].seed = nd.seed
                nt[i].stream = nd.stream; nt[i].momentum = nd.momentum; nt[i].epsilon = nd.epsilon
                nt[i].param = nd.param; nt[i].frozen = nd.frozen
            for k, o in enumerate(outputs):
                ot[k] = o
            for i, v in enumerate(variables):
                vt[i].off = v.off; vt[i].size = v.size; vt[i].l1 = v.l1; vt[i].l2 = v.l2
            self.net = fm_net_create(f64, nn, nt, ne, et, no, ot, nv, vt, plan.n_params, &status)
        finally:
            free(nt); free(et); free(vt)
        if self.net == NULL:
            if status == FM_ERR_NOMEM:
                raise MemoryError("fastmlp: could not create the network")
            raise ValueError("internal: the engine refused the network plan (inconsistent widths, "
                             "offsets or graph)")
        self.f64 = f64
        self.typenum = _F64 if f64 else _F32
        self.n_inputs = fm_net_n_inputs(self.net)
        self.n_outputs = fm_net_n_outputs(self.net)
        self.input_widths = [fm_net_input_width(self.net, k) for k in range(self.n_inputs)]
        self.output_widths = [fm_net_output_width(self.net, k) for k in range(self.n_outputs)]
        self.n_params = plan.n_params

    # Compatibility with one-input, one-output callers.
    @property
    def n_in(self):
        return self.input_widths[0]

    @property
    def n_out(self):
        return self.output_widths[0]

    def set_int8(self, int node, Int8Dense q):
        """Run Dense node ``node`` with the int8 kernel ``q`` at inference (None: in
        float again).  The network keeps a reference to ``q``."""
        if self.int8 is None:
            self.int8 = {}
        status = fm_net_set_q8(self.net, node, q.q if q is not None else NULL)
        if status == FM_ERR_ARG:
            raise ValueError(f"internal: node {node} cannot run in int8 (a float32 Dense node with the "
                             f"kernel's widths is needed)")
        _raise_status(status)
        if q is None:
            self.int8.pop(node, None)
        else:
            self.int8[node] = q

    def set_bf16(self, int node, BF16Dense b):
        """Run Dense node ``node`` with the bfloat16 kernel ``b`` at inference (None:
        in float again).  The network keeps a reference to ``b``."""
        if self.bf16 is None:
            self.bf16 = {}
        status = fm_net_set_bf16(self.net, node, b.b if b is not None else NULL)
        if status == FM_ERR_ARG:
            raise ValueError(f"internal: node {node} cannot run in bfloat16 (a float32 Dense node with the "
                             f"kernel's widths is needed)")
        _raise_status(status)
        if b is None:
            self.bf16.pop(node, None)
        else:
            self.bf16[node] = b

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

    cdef int _losses(self, fm_loss_spec *specs, losses) except -1:
        cdef list ls = [losses] if isinstance(losses, tuple) else list(losses)
        if len(ls) != self.n_outputs:
            raise ValueError(f"internal: {self.n_outputs} losses are needed, got {len(ls)}")
        for k, l in enumerate(ls):
            _fill_loss(&specs[k], l)
        return 0

    cdef _data(self, X, Y, y, w, int64_t *n_rows):
        """The _Arrays of one call's inputs, targets, labels and weights."""
        xs = _as_list(X, self.n_inputs)
        n = _rows(xs[0])
        n_rows[0] = n
        Ys = _as_list(Y, self.n_outputs)
        ys = _as_list(y, self.n_outputs)
        for k in range(self.n_outputs):
            if Ys[k] is None and ys[k] is None:
                raise ValueError(f"internal: output {k} has no targets")
        if w is not None and _rows(w) != n:
            raise ValueError("internal: one weight per row is needed")
        return (_Arrays(xs, self.typenum, "X", n, self.input_widths),
                _Arrays(Ys, self.typenum, "Y", n, self.output_widths),
                _Arrays(ys, _I64, "y", n))

    def predict(self, params, X, out):
        """out[k][:] = output k of the network for X (inference mode): X and out are
        lists (one array per input / output), or single arrays for a one-input,
        one-output network."""
        cdef void *pp = _ptr(params, self.typenum, "params")
        cdef void *xp[FM_MAX_INPUTS]
        cdef void *op[FM_MAX_OUTPUTS]
        cdef int64_t n
        cdef int status = 0
        cdef cnp.ndarray a
        xs = X if isinstance(X, list) else _as_list(X, self.n_inputs)
        outs = out if isinstance(out, list) else _as_list(out, self.n_outputs)
        if len(xs) != self.n_inputs or len(outs) != self.n_outputs:
            raise ValueError("internal: one array per input and per output is needed")
        n = _rows(xs[0])
        for k in range(self.n_inputs):
            a = <cnp.ndarray?>xs[k]
            xp[k] = _ptr(a, self.typenum, "X")
            if cnp.PyArray_NDIM(a) != 2 or cnp.PyArray_DIM(a, 0) != n or \
                    cnp.PyArray_DIM(a, 1) != self.input_widths[k]:
                raise ValueError("internal: predict input shapes")
        for k in range(self.n_outputs):
            a = <cnp.ndarray?>outs[k]
            op[k] = _ptr(a, self.typenum, "out")
            if cnp.PyArray_NDIM(a) != 2 or cnp.PyArray_DIM(a, 0) != n or \
                    cnp.PyArray_DIM(a, 1) != self.output_widths[k]:
                raise ValueError("internal: predict output shapes")
        if n > 0:
            with nogil:
                if self.f64:
                    fm_predict_f64(self.net, <double *>pp, <const double *const *>xp, n,
                                   <double *const *>op, &status)
                else:
                    fm_predict_f32(self.net, <float *>pp, <const float *const *>xp, n,
                                   <float *const *>op, &status)
        _raise_status(status)
        return out

    def loss_and_grads(self, params, X, Y, y, w, losses, uint64_t seed=0, int64_t step=0,
                       bint training=False):
        """Loss (with regularization) and a copy of the flat gradient for one batch."""
        cdef fm_loss_spec specs[FM_MAX_OUTPUTS]
        self._losses(specs, losses)
        cdef void *pp = _ptr(params, self.typenum, "params")
        cdef int64_t n = 0
        xa, Ya, ya = self._data(X, Y, y, w, &n)
        cdef fm_data d
        _fill_data(&d, xa, Ya, ya, _ptr(w, self.typenum, "w"))
        cdef double value = 0
        cdef int status
        self._enter()
        try:
            with nogil:
                if self.f64:
                    status = fm_loss_and_grads_f64(self.net, <double *>pp, &d, n, specs, seed, step, training,
                                                   &value)
                else:
                    status = fm_loss_and_grads_f32(self.net, <float *>pp, &d, n, specs, seed, step, training,
                                                   &value)
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

    def last_outputs(self, int64_t rows):
        """Copies of the model outputs of the last training batch (its first ``rows``
        rows, in training mode): what Python metrics read.  The caller passes that
        batch's size."""
        dtype = np.float64 if self.f64 else np.float32
        cdef int k
        cdef int64_t width
        cdef const void *src
        outs = []
        for k in range(fm_net_n_outputs(self.net)):
            width = fm_net_output_width(self.net, k)
            out = np.empty((rows, width), dtype=dtype)
            src = fm_net_output(self.net, k, rows)
            if src == NULL or rows <= 0:
                raise ValueError("the network has no outputs of a training batch to give")
            memcpy(cnp.PyArray_DATA(out), src, <size_t>(rows * width * (8 if self.f64 else 4)))
            outs.append(out)
        return outs

    def evaluate(self, params, X, Y, y, w, int64_t batch_size, losses, list metrics):
        """Sums over all rows: (loss_sum, rows, weight_sum, [metric sums], [output loss sums])."""
        cdef fm_loss_spec specs[FM_MAX_OUTPUTS]
        cdef fm_metric_spec mspecs[FM_MAX_METRICS]
        cdef fm_stats stats
        self._losses(specs, losses)
        cdef int nm = _fill_metrics(mspecs, metrics)
        cdef void *pp = _ptr(params, self.typenum, "params")
        cdef int64_t n = 0
        xa, Ya, ya = self._data(X, Y, y, w, &n)
        cdef fm_data d
        _fill_data(&d, xa, Ya, ya, _ptr(w, self.typenum, "w"))
        cdef int status
        memset(&stats, 0, sizeof(stats))
        with nogil:
            if self.f64:
                status = fm_evaluate_f64(self.net, <double *>pp, &d, n, batch_size, specs, nm, mspecs, &stats)
            else:
                status = fm_evaluate_f32(self.net, <float *>pp, &d, n, batch_size, specs, nm, mspecs, &stats)
        _raise_status(status)
        return _sums(&stats, nm, self.n_outputs)

    def train(self, params, slots, dict opt, X, Y, y, w, order, int64_t batch_size,
              int64_t batch_begin, int64_t batch_end, lrs, losses, list metrics,
              uint64_t seed):
        """Run batches [batch_begin, batch_end) of an epoch; updates params, slots and
        opt['iterations'] / opt['u_product'] in place.  Returns the sums like evaluate."""
        cdef fm_loss_spec specs[FM_MAX_OUTPUTS]
        cdef fm_metric_spec mspecs[FM_MAX_METRICS]
        cdef fm_stats stats
        cdef fm_optim o
        self._losses(specs, losses)
        cdef int nm = _fill_metrics(mspecs, metrics)
        _fill_optim(&o, opt)
        cdef void *pp = _ptr(params, self.typenum, "params")
        cdef void *ps = _ptr(slots, self.typenum, "slots")
        cdef void *po = _ptr(order, _I64, "order")
        cdef void *pl = _ptr(lrs, _F64, "lrs")
        if _rows(lrs) < batch_end - batch_begin:
            raise ValueError("internal: one learning rate per batch is needed")
        cdef int64_t n = 0
        xa, Ya, ya = self._data(X, Y, y, w, &n)
        cdef fm_data d
        _fill_data(&d, xa, Ya, ya, _ptr(w, self.typenum, "w"))
        if order is not None and _rows(order) != n:
            raise ValueError("internal: one order entry per row is needed")
        cdef int status
        memset(&stats, 0, sizeof(stats))
        if slots is None or (<cnp.ndarray>slots).shape[0] < 3 * self.n_params:
            raise ValueError("internal: optimizer slots are missing or too small for this network")
        self._enter()
        try:
            with nogil:
                if self.f64:
                    status = fm_train_f64(self.net, <double *>pp, <double *>ps, &o, &d, <int64_t *>po, n,
                                          batch_size, batch_begin, batch_end, <double *>pl, specs, nm, mspecs,
                                          seed, &stats)
                else:
                    status = fm_train_f32(self.net, <float *>pp, <float *>ps, &o, &d, <int64_t *>po, n,
                                          batch_size, batch_begin, batch_end, <double *>pl, specs, nm, mspecs,
                                          seed, &stats)
        finally:
            self.busy = False
        opt["iterations"] = o.iterations
        opt["u_product"] = o.u_product
        _raise_status(status)
        return _sums(&stats, nm, self.n_outputs)

    def train_epochs(self, params, slots, dict opt, X, Y, y, w, uint64_t epoch, int64_t n_epochs, bint shuffle,
                     int64_t batch_size, int64_t steps, lrs, losses, list metrics, uint64_t seed, out):
        """Whole epochs ``epoch`` .. ``epoch + n_epochs - 1`` in one call: each one is
        ``train`` over batches [0, steps) with ``permutation(seed, epoch, n)`` as its
        order when ``shuffle``; ``lrs`` holds ``steps`` rates per epoch.  The metrics
        must keep no state (their sums restart every epoch).  Row e of ``out`` (float64,
        n_epochs x (3 + metrics + outputs)) receives epoch e's sums, flat: loss_sum, rows,
        weight_sum, the metric sums, the output loss sums.  ``opt["epochs_done"]`` receives
        the number of epochs completed; returns the status: 0, or the engine error that
        stopped the epoch after them part way (``raise_status`` raises it).  Nothing the
        garbage collector tracks is made once the engine has run (ints only, no tuple), so
        that no collection starts there and a pending Ctrl-C reaches the caller rather than
        a finalizer or gc callback, which would lose it."""
        cdef fm_loss_spec specs[FM_MAX_OUTPUTS]
        cdef fm_metric_spec mspecs[FM_MAX_METRICS]
        cdef fm_optim o
        self._losses(specs, losses)
        cdef int nm = _fill_metrics(mspecs, metrics)
        cdef int i, no = self.n_outputs
        for i in range(nm):
            if mspecs[i].state != NULL:
                raise ValueError("internal: train_epochs takes metrics without state only")
        _fill_optim(&o, opt)
        cdef void *pp = _ptr(params, self.typenum, "params")
        cdef void *ps = _ptr(slots, self.typenum, "slots")
        cdef double *pl = <double *>_ptr(lrs, _F64, "lrs")
        if steps < 1 or n_epochs < 0 or _rows(lrs) < n_epochs * steps:
            raise ValueError("internal: one learning rate per batch of every epoch is needed")
        cdef int64_t width = 3 + nm + no
        cdef double *po_sums = <double *>_ptr(out, _F64, "out")
        if (<cnp.ndarray?>out).ndim != 2 or out.shape[0] < n_epochs or out.shape[1] != width:
            raise ValueError(f"internal: out must be {n_epochs} x {width}")
        cdef int64_t n = 0
        xa, Ya, ya = self._data(X, Y, y, w, &n)
        cdef fm_data d
        _fill_data(&d, xa, Ya, ya, _ptr(w, self.typenum, "w"))
        if slots is None or (<cnp.ndarray>slots).shape[0] < 3 * self.n_params:
            raise ValueError("internal: optimizer slots are missing or too small for this network")
        order = np.empty(n if shuffle else 0, dtype=np.int64)
        cdef int64_t *po = <int64_t *>cnp.PyArray_DATA(order) if shuffle else NULL
        cdef fm_stats stats
        cdef double *row
        cdef int status = FM_OK
        cdef int64_t e, done = 0
        self._enter()
        try:
            with nogil:
                for e in range(n_epochs):
                    if shuffle:
                        fm_permutation(seed, epoch + <uint64_t>e, n, po)
                    memset(&stats, 0, sizeof(stats))
                    if self.f64:
                        status = fm_train_f64(self.net, <double *>pp, <double *>ps, &o, &d, po, n, batch_size,
                                              0, steps, pl + e * steps, specs, nm, mspecs, seed, &stats)
                    else:
                        status = fm_train_f32(self.net, <float *>pp, <float *>ps, &o, &d, po, n, batch_size,
                                              0, steps, pl + e * steps, specs, nm, mspecs, seed, &stats)
                    if status != FM_OK:
                        break
                    row = po_sums + e * width
                    row[0], row[1], row[2] = stats.loss_sum, stats.rows, stats.weight_sum
                    for i in range(nm):
                        row[3 + i] = stats.metric_sum[i]
                    for i in range(no):
                        row[3 + nm + i] = stats.output_loss_sum[i]
                    done += 1
        finally:
            self.busy = False
        opt["iterations"] = o.iterations
        opt["u_product"] = o.u_product
        opt["epochs_done"] = done
        return status
