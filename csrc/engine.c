/* The network object, counter-based random numbers, and the two
 * instantiations (float, double) of the kernel templates in *_impl.h. */
#include "fastmlp.h"
#include "gemm_kernels.h"   /* fm_gemm_buffer: thread-local scratch */
#include "kinds/kind.h"
#include "qgemm.h"
#include "bgemm.h"
#include "optim_kernels.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct fm_net {
    int is_f64;
    int n_nodes, n_inputs, n_outputs, n_vars;
    fm_node *nodes;
    const fm_kind **kinds;     /* per node */
    int32_t *edges;            /* node inputs (fm_node.in_begin) */
    int64_t n_edges;
    int64_t *edge_width;       /* the width of each edge's producer */
    int32_t outputs[FM_MAX_OUTPUTS];
    fm_var *vars;
    int64_t n_params, max_width, max_out_width, max_inputs;
    int64_t macs_per_row;      /* multiply-adds of one row through the dense nodes */
    int64_t max_macs_per_row;  /* ... through the largest one (its GEMMs' size, per row) */
    /* what the graph implies, computed once */
    int32_t *input_index;      /* INPUT nodes: which model input (else -1) */
    uint8_t *needs_backward;   /* the node or something it reads has trainable weights */
    uint8_t *fusable;          /* its activation may be folded into its only reader's backward */
    uint8_t *accumulate_w;     /* another node of the same layer writes its weight gradients first */
    uint8_t *is_output;
    uint8_t *live;             /* an output depends on the node (a nested model's unused outputs do
                                * not): other nodes are never computed */
    /* inference: nodes that are the identity there read through to their source;
     * computed nodes share max_width-sized slots by liveness */
    int32_t *alias;            /* the node whose output this node's output is */
    int32_t *slot;             /* -1: an input or an alias */
    int n_slots;
    int32_t loss_node[FM_MAX_OUTPUTS];   /* alias[outputs[k]] */
    int32_t z_owner[FM_MAX_OUTPUTS];     /* the first output with the same loss node */
    void *grads;               /* n_params */
    /* training workspace for up to cap_rows rows */
    int64_t cap_rows;
    void **A, **Z, **WS, **G;  /* per node: output, pre-activation, kind workspace, gradient */
    const void **out;          /* per node: where its output is in this pass */
    void *L;                   /* a loss gradient, cap x max_out_width */
    void **Xb, **Yb, *wb;      /* gathered batch */
    int64_t **yb;
    int *written, *pre;        /* per node, during backward */
    const void **in_ptr;       /* max_inputs: a node's input blocks */
    void **din;
    int *din_add, *din_pre;
    fm_act_ref *din_act;
    const fm_q8_dense **q8;    /* per node, or NULL: a Dense node's int8 kernel (inference only;
                                * owned by the caller, see fm_net_set_q8) */
    const fm_bf16_dense **bf16; /* per node, or NULL: a Dense node's bfloat16 kernel (the same terms,
                                 * see fm_net_set_bf16) */
};

/* ---- random numbers: a stateless 64-bit mixer (SplitMix64 finaliser over a
 * Weyl sequence keyed by `key`).  Resuming needs only (seed, counters). ---- */
uint64_t fm_hash64(uint64_t key, uint64_t counter) {
    uint64_t z = key + (counter + 1) * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    z += 0x632BE59BD9B4E019ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void fm_permutation(uint64_t seed, uint64_t epoch, int64_t n, int64_t *out) {
    const uint64_t key = fm_hash64(seed ^ 0x5107F1Eull, epoch);
    for (int64_t i = 0; i < n; i++) out[i] = i;
    for (int64_t i = n - 1; i > 0; i--) {
        /* unbiased enough: 64-bit draw scaled by a 128-bit multiply */
        uint64_t r = fm_hash64(key, (uint64_t)i);
        int64_t j = (int64_t)(((unsigned __int128)r * (uint64_t)(i + 1)) >> 64);
        int64_t t = out[i]; out[i] = out[j]; out[j] = t;
    }
}

const char *fm_activation_name(int act) {
    static const char *const names[FM_ACT_COUNT] = {
        [FM_ACT_LINEAR] = "linear", [FM_ACT_RELU] = "relu", [FM_ACT_SIGMOID] = "sigmoid",
        [FM_ACT_TANH] = "tanh", [FM_ACT_SOFTMAX] = "softmax", [FM_ACT_ELU] = "elu", [FM_ACT_SELU] = "selu",
        [FM_ACT_LEAKY_RELU] = "leaky_relu", [FM_ACT_GELU] = "gelu", [FM_ACT_SOFTPLUS] = "softplus",
        [FM_ACT_SOFTSIGN] = "softsign", [FM_ACT_SWISH] = "swish", [FM_ACT_HARD_SIGMOID] = "hard_sigmoid",
        [FM_ACT_EXPONENTIAL] = "exponential", [FM_ACT_RELU6] = "relu6", [FM_ACT_RELU_CAP] = "relu_cap",
        [FM_ACT_LOG_SOFTMAX] = "log_softmax",
    };
    return act >= 0 && act < FM_ACT_COUNT ? names[act] : NULL;
}

/* ---- the network ---- */
static int needs_z(int act) {
    return act == FM_ACT_GELU || act == FM_ACT_SWISH || act == FM_ACT_SOFTMAX ||
           act == FM_ACT_SIGMOID;
}

static int has_weights(const fm_net *net, int n) {
    const fm_node *nd = &net->nodes[n];
    return net->kinds[n]->has_weights && (nd->w_off >= 0 || nd->b_off >= 0);
}

/* Check the graph and work out what every pass needs to know about it. */
static int fm_net_analyse(fm_net *net) {
    const int nn = net->n_nodes;
    int32_t *consumers = (int32_t *)calloc((size_t)nn, sizeof(int32_t));
    int32_t *last_use = (int32_t *)malloc(sizeof(int32_t) * (size_t)nn);
    int32_t *free_slots = (int32_t *)malloc(sizeof(int32_t) * (size_t)nn);
    int64_t *seen_w = (int64_t *)malloc(sizeof(int64_t) * (size_t)nn);
    int n_seen = 0, n_free = 0;
    int status = FM_ERR_ARG;
    if (!consumers || !last_use || !free_slots || !seen_w) { status = FM_ERR_NOMEM; goto done; }
    net->max_width = 1;
    for (int n = 0; n < nn; n++) {
        const fm_node *nd = &net->nodes[n];
        const fm_kind *k = fm_kind_get(nd->kind);
        net->kinds[n] = k;
        net->input_index[n] = -1;
        net->alias[n] = n;
        net->slot[n] = -1;
        last_use[n] = -1;
        if (!k || nd->n_out <= 0 || nd->n_inputs < 0 || nd->n_inputs > FM_MAX_NODE_INPUTS ||
            nd->in_begin < 0 || nd->in_begin > net->n_edges - nd->n_inputs ||
            nd->activation < 0 || nd->activation >= FM_ACT_COUNT) goto done;
        if (nd->kind == FM_KIND_INPUT) {
            if (n != net->n_inputs) goto done;   /* the inputs come first */
            net->input_index[n] = net->n_inputs++;
        }
        int64_t *w = net->edge_width + nd->in_begin;
        for (int i = 0; i < nd->n_inputs; i++) {
            const int32_t p = net->edges[nd->in_begin + i];
            if (p < 0 || p >= n) goto done;      /* topological order */
            w[i] = net->nodes[p].n_out;
        }
        if (k->check(nd, w, net->n_params) != FM_OK) goto done;
        if (nd->n_inputs > net->max_inputs) net->max_inputs = nd->n_inputs;
        if (nd->n_out > net->max_width) net->max_width = nd->n_out;
        if (k->identity_at_inference) net->alias[n] = net->alias[net->edges[nd->in_begin]];
    }
    if (net->n_inputs == 0 || net->n_inputs > FM_MAX_INPUTS || net->n_outputs <= 0 || net->n_outputs > FM_MAX_OUTPUTS) goto done;
    for (int k = 0; k < net->n_outputs; k++) {
        const int32_t o = net->outputs[k];
        if (o < net->n_inputs || o >= nn) goto done;   /* a computed node */
        net->live[o] = 1;
    }
    /* what the outputs depend on (a nested model's unused outputs are dead: never computed,
     * and their nodes of shared layers take no part in the weight gradients) */
    for (int n = nn - 1; n >= 0; n--) {
        const fm_node *nd = &net->nodes[n];
        if (n < net->n_inputs) net->live[n] = 1;
        if (!net->live[n]) continue;
        for (int i = 0; i < nd->n_inputs; i++) {
            const int32_t p = net->edges[nd->in_begin + i];
            net->live[p] = 1;
            consumers[p]++;
        }
    }
    for (int n = net->n_inputs; n < nn; n++) {
        const fm_node *nd = &net->nodes[n];
        if (!net->live[n]) continue;
        if (nd->kind == FM_KIND_DENSE) {
            const int64_t macs = net->edge_width[nd->in_begin] * nd->n_out;
            net->macs_per_row += macs;
            if (macs > net->max_macs_per_row) net->max_macs_per_row = macs;
        }
        /* backward reaches this node when it or something it reads has weights */
        int nb = has_weights(net, n);
        for (int i = 0; i < nd->n_inputs; i++) nb |= net->needs_backward[net->edges[nd->in_begin + i]];
        net->needs_backward[n] = (uint8_t)nb;
    }
    net->max_out_width = 1;
    for (int k = 0; k < net->n_outputs; k++) {
        const int32_t o = net->outputs[k];
        net->is_output[o] = 1;
        net->loss_node[k] = net->alias[o];
        net->z_owner[k] = k;
        for (int j = 0; j < k; j++) if (net->loss_node[j] == net->loss_node[k]) { net->z_owner[k] = j; break; }
        if (net->nodes[o].n_out > net->max_out_width) net->max_out_width = net->nodes[o].n_out;
    }
    /* a node's activation can be folded into the backward of its only reader */
    for (int n = net->n_inputs; n < nn; n++)
        net->fusable[n] = consumers[n] == 1 && !net->is_output[n] && net->nodes[n].activation != FM_ACT_LINEAR;
    /* shared layers: the last node (first in backward) writes the weight gradients, the others add */
    for (int n = nn - 1; n >= net->n_inputs; n--) {
        if (!net->live[n] || !has_weights(net, n)) continue;
        const fm_node *nd = &net->nodes[n];
        const int64_t key = nd->w_off >= 0 ? nd->w_off : nd->b_off;
        int seen = 0;
        for (int j = 0; j < n_seen; j++) if (seen_w[j] == key) seen = 1;
        net->accumulate_w[n] = (uint8_t)seen;
        if (!seen) seen_w[n_seen++] = key;
    }
    /* inference slots: a computed node takes a free slot; a slot is free again after
     * the last node that reads it (outputs keep theirs to the end) */
    for (int n = net->n_inputs; n < nn; n++) {
        const fm_node *nd = &net->nodes[n];
        if (net->alias[n] != n || !net->live[n]) continue;
        for (int i = 0; i < nd->n_inputs; i++) last_use[net->alias[net->edges[nd->in_begin + i]]] = n;
    }
    for (int k = 0; k < net->n_outputs; k++) last_use[net->loss_node[k]] = nn;
    for (int n = net->n_inputs; n < nn; n++) {
        const fm_node *nd = &net->nodes[n];
        if (net->alias[n] != n || !net->live[n]) continue;
        net->slot[n] = n_free ? free_slots[--n_free] : net->n_slots++;
        for (int i = 0; i < nd->n_inputs; i++) {
            const int32_t p = net->alias[net->edges[nd->in_begin + i]];
            if (net->slot[p] >= 0 && last_use[p] == n) { free_slots[n_free++] = net->slot[p]; last_use[p] = -1; }
        }
    }
    status = FM_OK;
done:
    free(consumers); free(last_use); free(free_slots); free(seen_w);
    return status;
}

fm_net *fm_net_create(int is_f64, int n_nodes, const fm_node *nodes, int64_t n_edges, const int32_t *edges,
                      int n_outputs, const int32_t *outputs, int n_vars, const fm_var *vars, int64_t n_params,
                      int *status) {
    *status = FM_ERR_ARG;
    if (n_nodes <= 0 || n_nodes > FM_MAX_NODES || n_edges < 0 || n_outputs <= 0 || n_outputs > FM_MAX_OUTPUTS ||
        n_vars < 0 || n_params < 0)
        return NULL;
    for (int v = 0; v < n_vars; v++)
        if (vars[v].size < 0 || !(vars[v].off >= 0 && vars[v].off <= n_params && vars[v].size <= n_params - vars[v].off))
            return NULL;
    *status = FM_ERR_NOMEM;
    fm_net *net = (fm_net *)calloc(1, sizeof(fm_net));
    if (!net) return NULL;
    const size_t nn = (size_t)n_nodes;
    net->is_f64 = is_f64;
    net->n_nodes = n_nodes;
    net->n_outputs = n_outputs;
    net->n_vars = n_vars;
    net->n_params = n_params;
    net->n_edges = n_edges;
    memcpy(net->outputs, outputs, sizeof(int32_t) * (size_t)n_outputs);
    net->nodes = (fm_node *)malloc(sizeof(fm_node) * nn);
    net->kinds = (const fm_kind **)calloc(nn, sizeof(fm_kind *));
    net->edges = (int32_t *)malloc(sizeof(int32_t) * (size_t)(n_edges > 0 ? n_edges : 1));
    net->edge_width = (int64_t *)malloc(sizeof(int64_t) * (size_t)(n_edges > 0 ? n_edges : 1));
    net->vars = (fm_var *)malloc(sizeof(fm_var) * (size_t)(n_vars > 0 ? n_vars : 1));
    net->input_index = (int32_t *)malloc(sizeof(int32_t) * nn);
    net->alias = (int32_t *)malloc(sizeof(int32_t) * nn);
    net->slot = (int32_t *)malloc(sizeof(int32_t) * nn);
    net->needs_backward = (uint8_t *)calloc(nn, 1);
    net->fusable = (uint8_t *)calloc(nn, 1);
    net->accumulate_w = (uint8_t *)calloc(nn, 1);
    net->is_output = (uint8_t *)calloc(nn, 1);
    net->live = (uint8_t *)calloc(nn, 1);
    net->A = (void **)calloc(nn, sizeof(void *));
    net->Z = (void **)calloc(nn, sizeof(void *));
    net->WS = (void **)calloc(nn, sizeof(void *));
    net->G = (void **)calloc(nn, sizeof(void *));
    net->out = (const void **)calloc(nn, sizeof(void *));
    net->written = (int *)calloc(nn, sizeof(int));
    net->pre = (int *)calloc(nn, sizeof(int));
    if (!net->nodes || !net->kinds || !net->edges || !net->edge_width || !net->vars || !net->input_index ||
        !net->alias || !net->slot || !net->needs_backward || !net->fusable || !net->accumulate_w ||
        !net->is_output || !net->live || !net->A || !net->Z || !net->WS || !net->G || !net->out || !net->written || !net->pre) {
        fm_net_free(net);
        return NULL;
    }
    memcpy(net->nodes, nodes, sizeof(fm_node) * nn);
    if (n_edges) memcpy(net->edges, edges, sizeof(int32_t) * (size_t)n_edges);
    if (n_vars) memcpy(net->vars, vars, sizeof(fm_var) * (size_t)n_vars);
    int st = fm_net_analyse(net);
    if (st == FM_OK) {
        const size_t mi = (size_t)(net->max_inputs > 0 ? net->max_inputs : 1);
        net->in_ptr = (const void **)calloc(mi, sizeof(void *));
        net->din = (void **)calloc(mi, sizeof(void *));
        net->din_add = (int *)calloc(mi, sizeof(int));
        net->din_pre = (int *)calloc(mi, sizeof(int));
        net->din_act = (fm_act_ref *)calloc(mi, sizeof(fm_act_ref));
        net->Xb = (void **)calloc((size_t)net->n_inputs, sizeof(void *));
        net->Yb = (void **)calloc((size_t)n_outputs, sizeof(void *));
        net->yb = (int64_t **)calloc((size_t)n_outputs, sizeof(int64_t *));
        if (!net->in_ptr || !net->din || !net->din_add || !net->din_pre || !net->din_act || !net->Xb ||
            !net->Yb || !net->yb)
            st = FM_ERR_NOMEM;
    }
    if (st != FM_OK) {
        fm_net_free(net);
        *status = st;
        return NULL;
    }
    *status = FM_OK;
    return net;
}

static void free_workspace(fm_net *net) {
    for (int n = 0; n < net->n_nodes; n++) {
        free(net->A[n]); net->A[n] = NULL;
        free(net->Z[n]); net->Z[n] = NULL;
        free(net->WS[n]); net->WS[n] = NULL;
        free(net->G[n]); net->G[n] = NULL;
    }
    if (net->Xb) for (int k = 0; k < net->n_inputs; k++) { free(net->Xb[k]); net->Xb[k] = NULL; }
    if (net->Yb) for (int k = 0; k < net->n_outputs; k++) {
        free(net->Yb[k]); net->Yb[k] = NULL;
        free(net->yb[k]); net->yb[k] = NULL;
    }
    free(net->L); free(net->wb);
    net->L = net->wb = NULL;
    net->cap_rows = 0;
}

void fm_net_free(fm_net *net) {
    if (!net) return;
    if (net->A && net->Z && net->WS && net->G) free_workspace(net);
    free(net->nodes); free(net->kinds); free(net->edges); free(net->edge_width); free(net->vars);
    free(net->input_index); free(net->alias); free(net->slot); free(net->needs_backward); free(net->fusable);
    free(net->accumulate_w); free(net->is_output); free(net->live); free(net->A); free(net->Z); free(net->WS); free(net->G);
    free(net->out); free(net->written); free(net->pre); free(net->in_ptr); free(net->din); free(net->din_add);
    free(net->din_pre); free(net->din_act); free(net->Xb); free(net->Yb); free(net->yb); free(net->grads);
    free(net->q8);
    free(net->bf16);
    free(net);
}

int fm_net_is_f64(const fm_net *net) { return net->is_f64; }

int fm_net_set_q8(fm_net *net, int node, const fm_q8_dense *q) {
    if (net->is_f64 || node < 0 || node >= net->n_nodes || net->nodes[node].kind != FM_KIND_DENSE)
        return FM_ERR_ARG;
    const fm_node *nd = &net->nodes[node];
    if (q && (nd->n_inputs != 1 || fm_q8_dense_n_out(q) != nd->n_out ||
              fm_q8_dense_n_in(q) != net->edge_width[nd->in_begin])) return FM_ERR_ARG;
    if (!net->q8) {
        if (!q) return FM_OK;
        net->q8 = (const fm_q8_dense **)calloc((size_t)net->n_nodes, sizeof *net->q8);
        if (!net->q8) return FM_ERR_NOMEM;
    }
    net->q8[node] = q;
    return FM_OK;
}

int fm_net_set_bf16(fm_net *net, int node, const fm_bf16_dense *b) {
    if (net->is_f64 || node < 0 || node >= net->n_nodes || net->nodes[node].kind != FM_KIND_DENSE)
        return FM_ERR_ARG;
    const fm_node *nd = &net->nodes[node];
    if (b && (nd->n_inputs != 1 || fm_bf16_dense_n_out(b) != nd->n_out ||
              fm_bf16_dense_n_in(b) != net->edge_width[nd->in_begin])) return FM_ERR_ARG;
    if (!net->bf16) {
        if (!b) return FM_OK;
        net->bf16 = (const fm_bf16_dense **)calloc((size_t)net->n_nodes, sizeof *net->bf16);
        if (!net->bf16) return FM_ERR_NOMEM;
    }
    net->bf16[node] = b;
    return FM_OK;
}

/* Whether inference runs Dense node n with an int8 or a bfloat16 kernel (its
 * linear output; the activation follows in float). */
static int fm_net_alt_dense(const fm_net *net, int n) {
    return (net->q8 && net->q8[n]) || (net->bf16 && net->bf16[n]);
}

/* Makes the calling thread's int8 and bfloat16 scratch large enough for `rows`
 * rows through every such node, so that the forward itself cannot fail. */
static int fm_net_q8_reserve(const fm_net *net, int64_t rows) {
    for (int n = 0; net->q8 && n < net->n_nodes; n++)
        if (net->q8[n] && fm_q8_dense_reserve(net->q8[n], rows) != FM_OK) return FM_ERR_NOMEM;
    for (int n = 0; net->bf16 && n < net->n_nodes; n++)
        if (net->bf16[n] && fm_bf16_dense_reserve(net->bf16[n], rows) != FM_OK) return FM_ERR_NOMEM;
    return FM_OK;
}

/* The float32 network's int8 or bfloat16 Dense forward (linear output into o);
 * the float64 instance is never reached (fm_net_set_q8 and fm_net_set_bf16
 * refuse float64 networks).  int8 wins when a node has both. */
static void fm_q8_node_forward_f32(const fm_net *net, int n, const float *params, const float *in, int64_t rows,
                                   float *o) {
    const fm_node *nd = &net->nodes[n];
    const float *bias = nd->b_off >= 0 ? params + nd->b_off : NULL;
    if (net->q8 && net->q8[n]) fm_q8_dense_forward(net->q8[n], in, net->edge_width[nd->in_begin], rows, bias, o);
    else fm_bf16_dense_forward(net->bf16[n], in, net->edge_width[nd->in_begin], rows, bias, o);
}
static void fm_q8_node_forward_f64(const fm_net *net, int n, const double *params, const double *in,
                                   int64_t rows, double *o) {
    (void)net; (void)n; (void)params; (void)in; (void)rows; (void)o;
}

/* After an optimizer step: every bfloat16 kernel the step may have changed (one
 * in a trainable variable) rounded again from its float32 master, for the next
 * training forward (the mixed_bfloat16 policy).  The update overwrites values in
 * place, so an inference reading a kernel meanwhile (predict on another thread)
 * sees old or new values, as it would of a float32 kernel. */
static void fm_net_bf16_refresh_f32(fm_net *net, const float *params) {
    for (int n = 0; net->bf16 && n < net->n_nodes; n++) {
        if (!net->bf16[n]) continue;
        const int64_t w = net->nodes[n].w_off;
        for (int v = 0; v < net->n_vars; v++)
            if (net->vars[v].off <= w && w < net->vars[v].off + net->vars[v].size) {
                fm_bf16_dense_update((fm_bf16_dense *)net->bf16[n], params + w);
                break;
            }
    }
}
static void fm_net_bf16_refresh_f64(fm_net *net, const double *params) {
    (void)net; (void)params;
}
int64_t fm_net_n_params(const fm_net *net) { return net->n_params; }
void *fm_net_grads(fm_net *net) { return net->grads; }
const void *fm_net_output(const fm_net *net, int k, int64_t rows) {
    if (k < 0 || k >= net->n_outputs || rows < 0 || rows > net->cap_rows) return NULL;
    return net->A[net->outputs[k]];
}
int fm_net_n_inputs(const fm_net *net) { return net->n_inputs; }
int fm_net_n_outputs(const fm_net *net) { return net->n_outputs; }
int64_t fm_net_input_width(const fm_net *net, int k) {
    return k >= 0 && k < net->n_inputs ? net->nodes[k].n_out : -1;
}
int64_t fm_net_output_width(const fm_net *net, int k) {
    return k >= 0 && k < net->n_outputs ? net->nodes[net->outputs[k]].n_out : -1;
}

/* Grow the training workspace to hold `rows` rows (never shrinks). */
static int fm_net_reserve(fm_net *net, int64_t rows, size_t es) {
    if (!net->grads) {
        net->grads = calloc((size_t)(net->n_params > 0 ? net->n_params : 1), es);
        if (!net->grads) return FM_ERR_NOMEM;
    }
    if (rows <= net->cap_rows) return FM_OK;
    free_workspace(net);
    int ok = 1;
    for (int n = 0; n < net->n_nodes && ok; n++) {
        const fm_node *nd = &net->nodes[n];
        const size_t width = (size_t)(rows * nd->n_out);
        if (nd->kind == FM_KIND_INPUT) {
            net->Xb[net->input_index[n]] = malloc(width * es);
            ok = net->Xb[net->input_index[n]] != NULL;
            continue;
        }
        if (!net->live[n]) continue;
        net->A[n] = malloc(width * es);
        ok = net->A[n] != NULL;
        if (needs_z(nd->activation)) { net->Z[n] = malloc(width * es); ok = ok && net->Z[n]; }
        if (net->kinds[n]->workspace) {
            net->WS[n] = malloc((size_t)net->kinds[n]->workspace(nd, rows) * es);
            ok = ok && net->WS[n];
        }
        if (net->needs_backward[n] || net->is_output[n]) { net->G[n] = malloc(width * es); ok = ok && net->G[n]; }
    }
    for (int k = 0; k < net->n_outputs && ok; k++) {
        net->Yb[k] = malloc((size_t)(rows * net->nodes[net->outputs[k]].n_out) * es);
        net->yb[k] = (int64_t *)malloc((size_t)rows * sizeof(int64_t));
        ok = net->Yb[k] && net->yb[k];
    }
    if (ok) {
        net->L = malloc((size_t)(rows * net->max_out_width) * es);
        net->wb = malloc((size_t)rows * es);
        ok = net->L && net->wb;
    }
    if (!ok) {
        free_workspace(net);
        return FM_ERR_NOMEM;
    }
    net->cap_rows = rows;
    return FM_OK;
}

/* Element-wise kernels are cloned for wider vector units and picked at load
 * time by the dynamic linker (GCC's target_clones over ifunc): the build stays
 * portable, with no -march flags. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define FM_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define FM_CLONES
#endif

/* ---- input checks ---- */
/* 1 when every value is finite: a value is NaN or infinite exactly when all
 * its exponent bits are set.  Integer tests OR-reduce in blocks, so the loop
 * vectorizes and stops early at the first bad block. */
#define FM_DEFINE_ALL_FINITE(NAME, T, U, EXP)                            \
FM_CLONES int NAME(const T *x, int64_t n) {                              \
    const U *u = (const U *)x;                                           \
    for (int64_t i = 0; i < n; i += 4096) {                              \
        int64_t end = i + 4096 < n ? i + 4096 : n;                       \
        U bad = 0;                                                       \
        for (int64_t j = i; j < end; j++) bad |= (U)((u[j] & EXP) == EXP); \
        if (bad) return 0;                                               \
    }                                                                    \
    return 1;                                                            \
}
FM_DEFINE_ALL_FINITE(fm_all_finite_f32, float, uint32_t, 0x7F800000u)
FM_DEFINE_ALL_FINITE(fm_all_finite_f64, double, uint64_t, 0x7FF0000000000000ull)

/* predict splits rows over threads when each gets at least this many. */
#define FM_INFER_MIN_ROWS_PER_THREAD 96

/* Variables of at least this many elements are updated by several threads,
 * in a training step whose largest GEMM ran on several threads (fm_train).
 * On an idle second core (fit at real-time priority, 1 vs 2 threads
 * interleaved) 2^14 rather than 2^17 made 784-32-10 b128 train 1.13-1.22x
 * faster than one thread (its first layer has 25k weights; on the 2-core
 * EPYC, 784-64-64-10 b32 too, 1.27x -- on the 2-core Xeon its split update
 * was 12% slower, its GEMMs being one thread's); on a busy machine the thread
 * policy keeps the update on one thread (csrc/gemm.c). */
#ifndef FM_OPT_PAR_MIN /* overridable for tuning */
#define FM_OPT_PAR_MIN ((int64_t)1 << 14)
#endif

/* 2^n from t = 1.5 * 2^(mantissa bits) + n (|n| small): n sits in the low bits
 * of t and goes to the exponent field.  Used by the vectorizable e^x. */
#define FM_DEFINE_POW2(NAME, F, U, MAGIC_BITS, BIAS, SHIFT)                     \
static inline F NAME(F t) {                                                     \
    U bits;                                                                     \
    memcpy(&bits, &t, sizeof bits);                                             \
    bits = (bits - (MAGIC_BITS) + (BIAS)) << (SHIFT);                           \
    memcpy(&t, &bits, sizeof t);                                                \
    return t;                                                                   \
}
FM_DEFINE_POW2(fm_pow2_f32, float, uint32_t, 0x4B400000u, 127u, 23)
FM_DEFINE_POW2(fm_pow2_f64, double, uint64_t, 0x4338000000000000ull, 1023u, 52)

/* ---- template instantiation ---- */

/* No contraction of a*b + c into one fused multiply-add: setup.py turns it off
 * for every compiler (-ffp-contract=off), since the compiler would contract some
 * loop iterations (vectorized) and not others, and a value's rounding would
 * depend on where the loop, or the GEMM tile it runs on, starts. */

#define fm_gemm_f32_ fm_gemm_f32
#define T float
#define SFX _f32
#include <tgmath.h>
#include "act_impl.h"
#include "loss_impl.h"
#include "optim_impl.h"
#include "net_impl.h"
#undef T
#undef SFX

#define T double
#define SFX _f64
#include "act_impl.h"
#include "loss_impl.h"
#include "optim_impl.h"
#include "net_impl.h"
#undef T
#undef SFX
