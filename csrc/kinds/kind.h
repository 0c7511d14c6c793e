/* What every layer kind provides to the network: one small table of functions.
 *
 * A kind lives in one file of this folder.  The file is a template over the
 * element type: it includes itself twice, with T = float (SFX _f32) and
 * T = double (SFX _f64), through FM_KIND_INSTANTIATE, then fills its fm_kind
 * table, which registry.c lists under its enum fm_kind code.  Adding a kind is
 * that file, a line in the enum (fastmlp.h) and a line in registry.c.
 *
 * The network (net_impl.h) owns every buffer and walks the nodes in
 * topological order.  Around a kind it does what is common to all of them:
 * it applies the node's activation after forward (unless the kind applies it
 * itself, as Dense does in its GEMM epilogue), takes the gradient through that
 * activation before backward, adds the gradients of a node read by several
 * others, and aliases the output of a kind that is the identity at inference.
 */
#ifndef FASTMLP_KIND_H
#define FASTMLP_KIND_H

#include "fastmlp.h"
#include <string.h>
#include <tgmath.h>

#define FM_CAT_(a, b) a##b
#define FM_CAT(a, b) FM_CAT_(a, b)

/* Forward through one node for `rows` rows. */
typedef struct {
    const fm_node *node;
    int64_t rows;
    const void *const *in;    /* node->n_inputs blocks, rows x in_width[i] each */
    const int64_t *in_width;
    void *out;                /* rows x node->n_out */
    void *ws;                 /* the kind's workspace (its `workspace` elements); NULL at inference */
    void *Z;                  /* kinds that apply the activation themselves keep the pre-activation
                               * here when not NULL (rows x n_out) */
    void *params;             /* the flat parameter vector (batch normalization writes its moving
                               * statistics when update_stats) */
    int training;             /* training-mode behaviour: dropout, noise, batch statistics */
    int update_stats;
    uint64_t seed;            /* the network's seed (random kinds with node->seed == 0) */
    int64_t step;             /* optimizer step: random kinds draw stream (node->stream, step) */
} fm_fwd;

/* The activation of a node that feeds another: a kind may fold its derivative
 * into the gradient it hands back (act < 0: not offered). */
typedef struct {
    int act;
    double alpha;
    const void *A, *Z;        /* the producer's output and pre-activation (rows x width) */
} fm_act_ref;

/* Backward through one node after a training forward. */
typedef struct {
    const fm_node *node;
    int64_t rows;
    const void *const *in;
    const int64_t *in_width;
    const void *out;          /* the training forward's output */
    const void *ws;
    const void *params;
    void *grads;              /* the flat gradient vector */
    int accumulate_weights;   /* add the weight gradients (another node of the same layer wrote
                               * them already) instead of writing them */
    void *dout;               /* gradient with respect to the node's pre-activation (rows x
                               * n_out); the kind may overwrite it */
    void *const *din;         /* per input: where its gradient goes; NULL: not needed */
    const int *din_add;       /* per input: add to din (1) or write it (0); inputs are handled
                               * in order, and one producer may appear twice */
    const fm_act_ref *din_act;/* per input: an activation the kind may fold in (Dense does) */
    int *din_pre;             /* out: 1 where the kind folded din_act[i] in */
    int training;
} fm_bwd;

typedef struct {
    const char *name;
    int applies_activation;   /* the kind applies node->activation itself, keeping Z */
    int identity_at_inference;/* out = in[0] at inference: the network skips and aliases it */
    int has_weights;          /* node->w_off / b_off name trainable segments */
    /* FM_OK when the node's widths and offsets are consistent, else FM_ERR_ARG. */
    int (*check)(const fm_node *n, const int64_t *in_width, int64_t n_params);
    /* Elements of workspace the training forward keeps for backward (NULL: none). */
    int64_t (*workspace)(const fm_node *n, int64_t rows);
    void (*forward[2])(const fm_fwd *a);     /* [0] float, [1] double */
    void (*backward[2])(const fm_bwd *a);
    /* A loss term the node adds to the model's loss (Keras add_loss, as
     * ActivityRegularization does), from its output of `rows` rows; its backward
     * adds the term's gradient.  NULL: none. */
    double (*penalty[2])(const fm_node *n, const void *out, int64_t rows);
} fm_kind;

const fm_kind *fm_kind_get(int kind);   /* NULL for an unknown code */

/* A kind file instantiates itself for float and double through instantiate.h
 * (see there for its layout). */

/* 1 when segment [off, off + size) lies inside a vector of n elements (off < 0: absent). */
static inline int fm_segment_ok(int64_t off, int64_t size, int64_t n) {
    return off < 0 || (size >= 0 && off <= n && size <= n - off);
}

/* A kind whose output has the width of every input. */
static inline int fm_same_width(const fm_node *n, const int64_t *in_width) {
    for (int i = 0; i < n->n_inputs; i++) if (in_width[i] != n->n_out) return 0;
    return n->n_inputs >= 1;
}

#endif
