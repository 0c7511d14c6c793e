/* Vectorized optimizer rules with run-time dispatch (optim.c picks one table
 * from CPU detection; fm_optim_set_target() forces one for tests).
 *
 * Only the float32 Adam/AdamW rule without amsgrad has a SIMD kernel: it is
 * the default optimizer, and its per-element sqrt and division run on the
 * divider, which takes ~1.4 cycles per element on one core, more than all
 * the other work of a 55k-parameter step's update.  The kernel computes
 *
 *     m = m + (g - m) * (1 - b1)        (bit-identical to the generic loop)
 *     v = v + (g*g - v) * (1 - b2)      (bit-identical)
 *     w = w - (m * alpha) / (sqrt(v) + eps)
 *
 * with the square root and the quotient from the 14-bit reciprocal estimates
 * (fused multiply-adds: two residual corrections of the square root; one
 * Newton step of the reciprocal, then one residual correction of the
 * quotient): the update is within one ulp of the correctly rounded one and
 * equal to it for all but about 1 in 10^5 values (tests/test_optim_kernels.py).
 * On one Sapphire Rapids core the rule then takes ~14 instead of ~24 cycles
 * per 16 values (the divider's throughput).  Lanes with v = 0, v subnormal, infinite or NaN take
 * the exact sqrt and division, so special values behave as the generic loop.
 * Every element, in a full vector or the masked tail, goes through the same
 * operations: results do not depend on where a (threaded) piece starts.
 *
 * "generic" means: no kernel here, the template loop in optim_impl.h runs.
 */
#ifndef FASTMLP_OPTIM_KERNELS_H
#define FASTMLP_OPTIM_KERNELS_H

#include <stdint.h>

/* Every optimizer rule (all kinds, both element types, every target) runs with
 * subnormal inputs read as zero and subnormal results stored as zero: x86
 * MXCSR DAZ and FTZ, set on the calling thread for the rule's loops only
 * (XLA's CPU runtime, and so JAX, flushes them throughout).  Where a gradient
 * is zero step after step (a dead unit, an input that is always zero) Adam's m
 * decays by b1 per step through the subnormal range, and every vector holding
 * such a value took microcode assists of ~100 cycles per operation: on
 * 784-64-64-10 (Fashion-MNIST, batch 32) 1.3% of m was subnormal and the
 * update took ~3x its time.  A subnormal slot moves no weight (m * lr
 * underflows; sqrt(v) is below eps's rounding).  Elsewhere: a no-op. */
#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
static inline unsigned int fm_flush_subnormals_begin(void) {
    const unsigned int csr = _mm_getcsr();
    _mm_setcsr(csr | 0x8040u);   /* FTZ | DAZ */
    return csr;
}
static inline void fm_flush_subnormals_end(unsigned int csr) { _mm_setcsr(csr); }
#else
static inline unsigned int fm_flush_subnormals_begin(void) { return 0; }
static inline void fm_flush_subnormals_end(unsigned int csr) { (void)csr; }
#endif

typedef void (*fm_adam_f32_fn)(float *w, const float *g, float *m, float *v, int64_t n,
                               float one_minus_b1, float one_minus_b2, float alpha, float eps);

typedef struct {
    const char *name;
    fm_adam_f32_fn adam_f32;   /* NULL: the generic loop */
} fm_optim_kernel_table;

extern const fm_optim_kernel_table fm_optim_table_generic;
#if defined(__x86_64__) || defined(__i386__)
extern const fm_optim_kernel_table fm_optim_table_avx512;
#endif

/* The table in use (detected once, or forced). */
const fm_optim_kernel_table *fm_optim_table(void);

/* "avx512" or "generic". */
const char *fm_optim_target_name(void);

/* Force a target by name (for tests); 0 on success, -1 when unknown or not
 * supported by this CPU.  "auto" restores detection. */
int fm_optim_set_target(const char *name);

#endif
