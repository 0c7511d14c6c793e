"""Standalone C99 for a trained model: one header and one source, no malloc, no globals
that change, only ``<math.h>``.

    fastmlp.saving.export_c(model, "iris_c/", name="iris")     # or model.export("iris_c", format="c")

writes ``iris_c/iris.h`` and ``iris_c/iris.c`` declaring::

    #define IRIS_N_INPUTS 4
    #define IRIS_N_OUTPUTS 3
    #define IRIS_SCRATCH_SIZE 64        /* floats the caller provides */
    int iris_predict(const float *input, float *output, float *scratch);   /* 0 on success */

for one sample (a model with several inputs or outputs reads them concatenated in the model's
order).  Weights are ``static const`` arrays: float32, or int8 kernels with a float32 scale per
output unit (``dtype="int8"``, the same quantization as fastmlp's int8 files).  Inference-time
identities (Dropout, GaussianNoise, Flatten) cost nothing; a BatchNormalization that follows a
Dense layer with no activation is folded into its weights; every activation is written out with
the engine's formulas.  The code is generated from the model's engine plan, node by node, so it
computes what ``model.predict`` computes.
"""
import os
import re

import numpy as np

from .. import _engine
from .format import _quantize_int8

__all__ = ["export_c"]

_KIND = {code: name for name, code in _engine.KINDS.items()}
_ACT = {code: name for name, code in _engine.ACTIVATIONS.items()}
_MERGES = {"add": "+", "subtract": "-", "multiply": "*", "average": "+", "maximum": "max", "minimum": "min"}
_IDENTITY_KINDS = ("dropout", "gaussian_noise", "gaussian_dropout", "alpha_dropout", "activity_regularization")


def _f(x):
    """A float literal that reads back as the same float32."""
    x = float(np.float32(x))
    if np.isnan(x) or np.isinf(x):
        raise ValueError("The model has non-finite weights; it cannot be exported to C")
    s = repr(x)
    if "e" not in s and "." not in s:
        s += ".0"
    return s + "f"


def _array(name, values, ctype="float"):
    values = np.asarray(values).reshape(-1)
    if ctype == "float":
        items = [_f(v) for v in values]
    else:
        items = [str(int(v)) for v in values]
    lines = []
    for i in range(0, len(items), 8):
        lines.append("    " + ", ".join(items[i:i + 8]) + ",")
    return f"static const {ctype} {name}[{max(len(items), 1)}] = {{\n" + "\n".join(lines or ["    0"]) + "\n};\n"


# activation -> a C statement on `v` (a float lvalue), with `a` the node's alpha
_ACT_C = {
    "linear": None,
    "relu": "v = v < 0.0f ? 0.0f : v;",
    "sigmoid": "v = v >= 0.0f ? 1.0f / (1.0f + expf(-v)) : expf(v) / (1.0f + expf(v));",
    "tanh": "v = tanhf(v);",
    "elu": "v = v > 0.0f ? v : {a} * expm1f(v);",
    "selu": "v = 1.0507009873554805f * (v > 0.0f ? v : 1.6732632423543772f * expm1f(v));",
    "leaky_relu": "v = v > 0.0f ? v : {a} * v;",
    "gelu": "v = 0.5f * v * (1.0f + erff(v * 0.70710678118654752440f));",
    "softplus": "v = (v > 0.0f ? v : 0.0f) + log1pf(expf(-fabsf(v)));",
    "softsign": "v = v / (1.0f + fabsf(v));",
    "swish": "v = v * (v >= 0.0f ? 1.0f / (1.0f + expf(-v)) : expf(v) / (1.0f + expf(v)));",
    "hard_sigmoid": "v = (v + 3.0f) / 6.0f; v = v < 0.0f ? 0.0f : (v > 1.0f ? 1.0f : v);",
    "exponential": "v = expf(v);",
    "relu6": "v = v < 0.0f ? 0.0f : (v > 6.0f ? 6.0f : v);",
    "relu_cap": "v = v < 0.0f ? 0.0f : (v > {a} ? {a} : v);",
}


class _Scratch:
    """Offsets into the caller's scratch array, reused once a buffer's last reader has run."""

    def __init__(self):
        self.free, self.size = [], 0

    def take(self, n):
        best = None
        for i, (off, size) in enumerate(self.free):
            if size >= n and (best is None or size < self.free[best][1]):
                best = i
        if best is not None:
            off, size = self.free.pop(best)
            if size > n:
                self.free.append((off + n, size - n))
            return off
        off, self.size = self.size, self.size + n
        return off

    def give(self, off, n):
        self.free.append((off, n))


def _c_name(name):
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name or ""):
        raise ValueError(f"`name` must be a C identifier (letters, digits, underscores; not starting with a "
                         f"digit); got {name!r}")
    return name


def export_c(model, path, name=None, dtype="float32", overwrite=False):
    """Write ``<path>/<name>.h`` and ``<path>/<name>.c`` for ``model``; returns a dict of what was
    written (paths, weight bytes, source bytes).  ``name`` defaults to the folder's name."""
    if dtype not in ("float32", "int8"):
        raise ValueError(f"`dtype` must be 'float32' or 'int8'; got {dtype!r}")
    if not getattr(model, "built", False):
        raise ValueError("The model is not built: build, train or load it before exporting")
    name = _c_name(name if name is not None else os.path.basename(os.path.normpath(str(path))))
    model._ensure_attached()
    plan = model._plan
    params = np.asarray(model._params, dtype=np.float64)
    nodes = plan.nodes
    n = len(nodes)
    readers = [[] for _ in range(n)]
    for i, nd in enumerate(nodes):
        for j in nd.inputs:
            readers[j].append(i)
    # identities alias their input; a BN right after an activation-free Dense with no other reader folds
    alias = list(range(n))
    folded = {}   # bn node -> dense node
    for i, nd in enumerate(nodes):
        kind = _KIND[nd.kind]
        if kind in _IDENTITY_KINDS and nd.activation == 0:
            alias[i] = alias[nd.inputs[0]]
        elif kind == "batch_normalization" and dtype != "int8":   # int8 keeps the Dense's own kernel
            src = nd.inputs[0]
            if _KIND[nodes[src].kind] == "dense" and nodes[src].activation == 0 and len(readers[src]) == 1 \
                    and src not in plan.outputs:
                folded[i] = src
    skip = set(folded.values())

    def vec(off, size, default=None):
        if off < 0:
            return None if default is None else np.full(size, default)
        return params[off:off + size]

    up = name.upper()
    weights, body, acts = [], [], set()
    weight_bytes = 0
    n_in = sum(plan.input_widths)
    n_out = sum(plan.output_widths)
    scratch = _Scratch()
    where = {}   # node -> C expression of its buffer
    col = 0
    for i, w in enumerate(plan.input_widths):
        where[i] = f"(input + {col})"
        col += w
    def reads(i):   # a folded BatchNormalization reads its Dense layer's input
        return nodes[folded[i]].inputs if i in folded else nodes[i].inputs

    last_use = {}
    for i in range(n):
        if i in skip:
            continue
        for j in reads(i):
            last_use[alias[j]] = i
    for o in plan.outputs:
        last_use[alias[o]] = n
    out_col = {}
    col = 0
    for o, w in zip(plan.outputs, plan.output_widths):
        out_col.setdefault(o, col)
        col += w
    sizes = {}

    for i, nd in enumerate(nodes):
        kind = _KIND[nd.kind]
        if kind == "input" or alias[i] != i or i in skip:
            continue
        width = nd.n_out
        if i in out_col and alias.count(i) == 1:
            dst = f"(output + {out_col.pop(i)})"
        else:
            off = scratch.take(width)
            sizes[i] = (off, width)
            dst = f"(scratch + {off})"
        where[i] = dst
        srcs = [where[alias[j]] for j in reads(i)]
        tag = f"n{i}"
        body.append(f"    /* {nd.layer.name if nd.layer is not None else kind}: {kind}, {width} units */")
        if kind == "dense" or i in folded:
            dense = nodes[folded[i]] if i in folded else nd
            n_prev = nodes[dense.inputs[0]].n_out
            W = params[dense.w_off:dense.w_off + n_prev * dense.n_out].reshape(n_prev, dense.n_out)
            b = vec(dense.b_off, dense.n_out, 0.0)
            if i in folded:   # y = gamma (x W + b - mean) / sqrt(var + eps) + beta
                gamma = vec(nd.w_off, width, 1.0)
                beta = vec(nd.b_off, width, 0.0)
                mean, var = vec(nd.aux_off, width), vec(nd.var_off, width)
                s = gamma / np.sqrt(var + nd.epsilon)
                W, b = W * s, (b - mean) * s + beta
            if dtype == "int8":   # fastmlp's int8 predict: the layer's int8 kernel, inputs quantized per row
                stored = getattr(dense.layer, "_int8", None)
                q, scale = stored if stored is not None else _quantize_int8(W.astype(np.float32))
                weights.append(_array(f"{tag}_q", np.ascontiguousarray(np.asarray(q).T), "signed char")
                               + _array(f"{tag}_scale", scale) + _array(f"{tag}_b", b))
                weight_bytes += q.size + 4 * (scale.size + b.size)
                tmp = scratch.take(n_prev)
                body.append(f"    dense_q({srcs[0]}, {n_prev}, {width}, {tag}_q, {tag}_scale, {tag}_b, {dst}, "
                            f"scratch + {tmp});")
                scratch.give(tmp, n_prev)
            else:
                weights.append(_array(f"{tag}_w", W) + _array(f"{tag}_b", b))
                weight_bytes += 4 * (W.size + b.size)
                body.append(f"    dense({srcs[0]}, {n_prev}, {width}, {tag}_w, {tag}_b, {dst});")
        elif kind == "batch_normalization":
            gamma, beta = vec(nd.w_off, width, 1.0), vec(nd.b_off, width, 0.0)
            mean, var = vec(nd.aux_off, width), vec(nd.var_off, width)
            s = gamma / np.sqrt(var + nd.epsilon)
            weights.append(_array(f"{tag}_s", s) + _array(f"{tag}_t", beta - mean * s))
            weight_bytes += 8 * width
            body.append(f"    for (i = 0; i < {width}; i++) {dst}[i] = {srcs[0]}[i] * {tag}_s[i] + {tag}_t[i];")
        elif kind in ("activation",) or kind in _IDENTITY_KINDS:
            body.append(f"    for (i = 0; i < {width}; i++) {dst}[i] = {srcs[0]}[i];")
        elif kind == "concatenate":
            c = 0
            for j, s_ in zip(nd.inputs, srcs):
                wj = nodes[j].n_out
                body.append(f"    for (i = 0; i < {wj}; i++) {dst}[{c} + i] = {s_}[i];")
                c += wj
        elif kind in _MERGES:
            op = _MERGES[kind]
            if op in ("max", "min"):
                cmp = ">" if op == "max" else "<"
                expr = f"{srcs[0]}[i]"
                lines = [f"        float m = {expr};"]
                for s_ in srcs[1:]:
                    lines.append(f"        if ({s_}[i] {cmp} m) m = {s_}[i];")
                body.append(f"    for (i = 0; i < {width}; i++) {{\n" + "\n".join(lines) + f"\n        {dst}[i] = m;\n    }}")
            else:
                expr = f" {op} ".join(f"{s_}[i]" for s_ in srcs)
                if kind == "average":
                    expr = f"({expr}) * {_f(1.0 / len(srcs))}"
                body.append(f"    for (i = 0; i < {width}; i++) {dst}[i] = {expr};")
        elif kind == "prelu":
            period = int(nd.param)
            weights.append(_array(f"{tag}_alpha", vec(nd.w_off, period)))
            weight_bytes += 4 * period
            body.append(f"    for (i = 0; i < {width}; i++) {{ float v = {srcs[0]}[i]; "
                        f"{dst}[i] = v > 0.0f ? v : {tag}_alpha[i % {period}] * v; }}")
        elif kind in ("normalization", "rescaling"):
            period = int(nd.param)
            first, second = vec(nd.w_off, period), vec(nd.b_off, period)
            if kind == "normalization":   # the engine's (x - mean) / max(sqrt(var), epsilon), or its inverse
                std = np.sqrt(second)
                std = np.where(std >= nd.epsilon, std, nd.epsilon)
                weights.append(_array(f"{tag}_mean", first) + _array(f"{tag}_std", std))
                expr = (f"{tag}_mean[i % {period}] + {srcs[0]}[i] * {tag}_std[i % {period}]" if nd.rate
                        else f"({srcs[0]}[i] - {tag}_mean[i % {period}]) / {tag}_std[i % {period}]")
            else:
                weights.append(_array(f"{tag}_scale", first) + _array(f"{tag}_offset", second))
                expr = f"{srcs[0]}[i] * {tag}_scale[i % {period}] + {tag}_offset[i % {period}]"
            weight_bytes += 8 * period
            body.append(f"    for (i = 0; i < {width}; i++) {dst}[i] = {expr};")
        elif kind == "layer_normalization":
            p_ = int(nd.param)
            gamma, beta = vec(nd.w_off, p_, 1.0), vec(nd.b_off, p_, 0.0)
            weights.append(_array(f"{tag}_gamma", gamma) + _array(f"{tag}_beta", beta))
            weight_bytes += 8 * p_
            body.append(f"    layer_norm({srcs[0]}, {width // p_}, {p_}, {float(nd.epsilon)!r}, {tag}_gamma, {tag}_beta, "
                        f"{dst});")
            acts.add("layer_norm")
        elif kind == "unit_normalization":
            p_ = int(nd.param)
            body.append(f"    unit_norm({srcs[0]}, {width // p_}, {p_}, {dst});")
            acts.add("unit_norm")
        elif kind == "embedding":
            n_ids = nodes[nd.inputs[0]].n_out
            dim, rows = width // n_ids, int(nd.param)
            weights.append(_array(f"{tag}_table", vec(nd.w_off, rows * dim)))
            weight_bytes += 4 * rows * dim
            body.append(f"    if (embed({srcs[0]}, {n_ids}, {dim}, {rows}, {tag}_table, {dst}) != 0) return -2;")
            acts.add("embed")
        else:
            raise ValueError(f"Layer {nd.layer.name!r} ({type(nd.layer).__name__}, engine kind {kind!r}) has no C "
                             f"export yet; the kinds with one: dense, batch_normalization, activation, dropout, "
                             f"gaussian_noise, gaussian_dropout, alpha_dropout, activity_regularization, "
                             f"concatenate, {', '.join(_MERGES)}, prelu, normalization, rescaling, "
                             f"layer_normalization, unit_normalization, embedding")
        act = _ACT[nd.activation]
        if act in ("softmax", "log_softmax"):
            acts.add(act)
            body.append(f"    {act}({dst}, {width});")
        elif act != "linear":
            stmt = _ACT_C[act].format(a=_f(nd.act_alpha))
            body.append(f"    for (i = 0; i < {width}; i++) {{ float v = {dst}[i]; {stmt} {dst}[i] = v; }}")
        # free the buffers whose last reader this node was
        for j in set(alias[j] for j in reads(i)):
            if last_use.get(j) == i and j in sizes:
                scratch.give(*sizes.pop(j))

    # outputs computed into scratch (or read twice) are copied into place
    col = 0
    for o, w in zip(plan.outputs, plan.output_widths):
        src = where[alias[o]]
        if src != f"(output + {col})":
            body.append(f"    for (i = 0; i < {w}; i++) output[{col} + i] = {src}[i];")
        col += w

    guard = f"{up}_H"
    header = f"""/* {name}.h: the fastmlp model {model.name!r} as standalone C99 (generated by fastmlp).
 *
 *   float scratch[{up}_SCRATCH_SIZE], out[{up}_N_OUTPUTS];
 *   if ({name}_predict(features, out, scratch) != 0) ...
 *
 * {name}_predict reads {up}_N_INPUTS floats (the model's inputs, concatenated in order) and
 * writes {up}_N_OUTPUTS floats (its outputs, concatenated).  It allocates nothing, keeps no
 * state and is safe to call from several threads with separate scratch arrays.
 * Returns 0; -1 when an argument is NULL; -2 when an Embedding's id is not a whole number in
 * [0, input_dim).
 */
#ifndef {guard}
#define {guard}

#define {up}_N_INPUTS {n_in}
#define {up}_N_OUTPUTS {n_out}
#define {up}_SCRATCH_SIZE {max(scratch.size, 1)}

#ifdef __cplusplus
extern "C" {{
#endif

int {name}_predict(const float *input, float *output, float *scratch);

#ifdef __cplusplus
}}
#endif

#endif /* {guard} */
"""
    helpers = []
    if any("dense(" in line and "dense_q(" not in line for line in body):
        helpers.append("""static void dense(const float *x, int n_in, int n_out, const float *w, const float *b, float *y)
{
    int i, j;
    for (j = 0; j < n_out; j++) y[j] = b[j];
    for (i = 0; i < n_in; i++) {
        const float xi = x[i];
        const float *row = w + (long)i * n_out;
        for (j = 0; j < n_out; j++) y[j] += xi * row[j];
    }
}
""")
    if any("dense_q(" in line for line in body):
        helpers.append("""/* fastmlp's int8 Dense: x quantized per call, s = amax / 127, xq = rint(x * 127 / amax) in
 * [-127, 127]; exact int32 sums against the int8 kernel (stored transposed, a row per unit);
 * y = ((float)acc * s) * scale + b.  A tiny amax gives zeros, a NaN or infinity NaN outputs. */
static void dense_q(const float *x, int n_in, int n_out, const signed char *qT, const float *scale,
                    const float *b, float *y, float *xq)
{
    int i, j;
    float amax = 0.0f, s, inv;
    int bad = 0;
    for (i = 0; i < n_in; i++) {
        const float a = fabsf(x[i]);
        if (a != a || a > 3.402823466e38f) bad = 1;
        else if (a > amax) amax = a;
    }
    if (bad) {
        for (j = 0; j < n_out; j++) y[j] = NAN;
        return;
    }
    if (!(amax >= 1e-30f)) {
        s = 0.0f;
        for (i = 0; i < n_in; i++) xq[i] = 0.0f;
    } else {
        s = amax / 127.0f;
        inv = 127.0f / amax;
        for (i = 0; i < n_in; i++) {
            float v = nearbyintf(x[i] * inv);
            xq[i] = v > 127.0f ? 127.0f : (v < -127.0f ? -127.0f : v);
        }
    }
    for (j = 0; j < n_out; j++) {
        const signed char *w = qT + (long)j * n_in;
        long acc = 0;
        for (i = 0; i < n_in; i++) acc += (long)xq[i] * w[i];
        y[j] = ((float)acc * s) * scale[j] + b[j];
    }
}
""")
    if "layer_norm" in acts:   # each group's mean and variance in double, as the engine
        helpers.append("""static void layer_norm(const float *x, int groups, int p, double eps, const float *gamma,
                       const float *beta, float *y)
{
    int g, j;
    for (g = 0; g < groups; g++, x += p, y += p) {
        double mean = 0.0, var = 0.0;
        float mu, is;
        for (j = 0; j < p; j++) mean += (double)x[j];
        mean /= (double)p;
        for (j = 0; j < p; j++) var += ((double)x[j] - mean) * ((double)x[j] - mean);
        var /= (double)p;
        is = (float)(1.0 / sqrt(var + eps));
        mu = (float)mean;
        for (j = 0; j < p; j++) y[j] = gamma[j] * ((x[j] - mu) * is) + beta[j];
    }
}
""")
    if "unit_norm" in acts:
        helpers.append("""static void unit_norm(const float *x, int groups, int p, float *y)
{
    int g, j;
    for (g = 0; g < groups; g++, x += p, y += p) {
        double ss = 0.0, inv;
        for (j = 0; j < p; j++) ss += (double)x[j] * (double)x[j];
        inv = 1.0 / sqrt(ss);
        if (!(inv < 1e12)) inv = 1e12;
        for (j = 0; j < p; j++) y[j] = x[j] * (float)inv;
    }
}
""")
    if "embed" in acts:
        helpers.append("""static int embed(const float *ids, int n, int dim, int rows, const float *table, float *y)
{
    int e, k;
    for (e = 0; e < n; e++) {
        const float v = ids[e];
        long row;
        if (!(v >= 0.0f && v < (float)rows) || v != (float)(long)v) return -1;
        row = (long)v;
        for (k = 0; k < dim; k++) y[(long)e * dim + k] = table[row * dim + k];
    }
    return 0;
}
""")
    if "softmax" in acts:
        helpers.append("""static void softmax(float *y, int n)
{
    int i;
    float m = y[0], s = 0.0f;
    for (i = 1; i < n; i++) if (y[i] > m) m = y[i];
    for (i = 0; i < n; i++) { y[i] = expf(y[i] - m); s += y[i]; }
    for (i = 0; i < n; i++) y[i] /= s;
}
""")
    if "log_softmax" in acts:
        helpers.append("""static void log_softmax(float *y, int n)
{
    int i;
    float m = y[0], s = 0.0f;
    for (i = 1; i < n; i++) if (y[i] > m) m = y[i];
    for (i = 0; i < n; i++) { y[i] -= m; s += expf(y[i]); }
    s = logf(s);
    for (i = 0; i < n; i++) y[i] -= s;
}
""")
    source = f"""/* {name}.c: generated by fastmlp from the model {model.name!r}; {weight_bytes} bytes of weights. */
#include <math.h>

#include "{name}.h"

{"".join(weights)}
{"".join(helpers)}
int {name}_predict(const float *input, float *output, float *scratch)
{{
    int i;
    if (!input || !output || !scratch) return -1;
    (void)i;
{chr(10).join(body)}
    return 0;
}}
"""
    os.makedirs(path, exist_ok=True)
    out = {"header": os.path.join(path, f"{name}.h"), "source": os.path.join(path, f"{name}.c")}
    existing = [out[k] for k in ("header", "source") if os.path.exists(out[k])]
    if existing and not overwrite:   # checked for both before either is written
        raise FileExistsError(f"{' and '.join(existing)} exist(s); pass overwrite=True to replace them")
    for key, text in (("header", header), ("source", source)):
        target = out[key]
        tmp = target + ".tmp"
        with open(tmp, "w") as fh:
            fh.write(text)
        os.replace(tmp, target)
    out.update(weight_bytes=weight_bytes, source_bytes=len(source), scratch_floats=max(scratch.size, 1),
               n_inputs=n_in, n_outputs=n_out)
    return out
