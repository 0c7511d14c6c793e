/* bfloat16 Dense driver (bgemm.h): packs kernels, picks the target once from
 * run-time CPU detection ("avx512bf16" > "avx2" > "generic"; fm_bf16_set_target()
 * forces one for tests), and runs a forward in chunks of rows so that a
 * chunk's rounded rows stay in cache while the kernel reads them. */
#include "bgemm_kernels.h"
#include "gemm_kernels.h"   /* fm_gemm_buffer */
#include "cpu.h"
#include "fastmlp.h"

#include <stdlib.h>
#include <string.h>

#define FM_BF16_CHUNK 256

static const fm_bf16_kernel_table *fm_bf16_detect(void) {
#if defined(__x86_64__) || defined(__i386__)
    if (fm_cpu_has_avx512_bf16()) return &fm_bf16_table_avx512bf16;
    if (fm_cpu_has_avx2_fma()) return &fm_bf16_table_avx2;
#endif
    return &fm_bf16_table_generic;
}

static const fm_bf16_kernel_table *g_bf16 = NULL;

static const fm_bf16_kernel_table *fm_bf16_table(void) {
    const fm_bf16_kernel_table *t = __atomic_load_n(&g_bf16, __ATOMIC_ACQUIRE);
    if (!t) {   /* benign race: every thread computes the same answer */
        t = fm_bf16_detect();
        __atomic_store_n(&g_bf16, t, __ATOMIC_RELEASE);
    }
    return t;
}

const char *fm_bf16_target_name(void) { return fm_bf16_table()->name; }

int fm_bf16_set_target(const char *name) {
    const fm_bf16_kernel_table *t = NULL;
    if (!name) return -1;
    if (strcmp(name, "auto") == 0) t = fm_bf16_detect();
    else if (strcmp(name, "generic") == 0) t = &fm_bf16_table_generic;
#if defined(__x86_64__) || defined(__i386__)
    else if (strcmp(name, "avx512bf16") == 0) t = fm_cpu_has_avx512_bf16() ? &fm_bf16_table_avx512bf16 : NULL;
    else if (strcmp(name, "avx2") == 0) t = fm_cpu_has_avx2_fma() ? &fm_bf16_table_avx2 : NULL;
#endif
    if (!t) return -1;
    __atomic_store_n(&g_bf16, t, __ATOMIC_RELEASE);
    return 0;
}


fm_bf16_dense *fm_bf16_dense_create(const float *W__io, int64_t n_in, int64_t n_out, int *status) {
    *status = FM_ERR_ARG;
    if (!W__io || n_in <= 0 || n_out <= 0 || n_in > (INT64_C(1) << 30) || n_out > (INT64_C(1) << 30) ||
        n_in * n_out > (INT64_C(1) << 40))
        return NULL;
    *status = FM_ERR_NOMEM;
    fm_bf16_dense *b = (fm_bf16_dense *)calloc(1, sizeof *b);
    if (!b) return NULL;
    b->n_in = n_in;
    b->n_out = n_out;
    b->kp = (n_in + 1) / 2 * 2;
    b->np = (n_out + 15) / 16 * 16;
    b->w = (uint16_t *)fm_aligned64((size_t)(b->kp * b->np) * sizeof(uint16_t));
    if (!b->w) {
        fm_bf16_dense_free(b);
        return NULL;
    }
    memset(b->w, 0, (size_t)(b->kp * b->np) * sizeof(uint16_t));   /* the padding, once */
    *status = fm_bf16_dense_update(b, W__io);
    return b;
}

int fm_bf16_dense_update(fm_bf16_dense *b, const float *W__io) {
    /* every value overwritten in place (the padding stays the zeros create wrote): a
     * forward reading b meanwhile -- a predict on another thread during fit -- sees
     * old or new values, never a cleared kernel */
    const int64_t n_in = b->n_in, n_out = b->n_out, pairs = b->kp / 2;
    for (int64_t k = 0; k < n_in; k++) {
        const float *row = W__io + k * n_out;
        for (int64_t j = 0; j < n_out; j++)
            b->w[((j / 16) * pairs + k / 2) * 32 + (j % 16) * 2 + k % 2] = fm_bf16_from_float(row[j]);
    }
    return FM_OK;
}

void fm_bf16_dense_free(fm_bf16_dense *b) {
    if (!b) return;
    fm_aligned64_free(b->w);
    free(b);
}

int64_t fm_bf16_dense_n_in(const fm_bf16_dense *b) { return b->n_in; }
int64_t fm_bf16_dense_n_out(const fm_bf16_dense *b) { return b->n_out; }

static size_t fm_bf16_bytes(const fm_bf16_dense *b, int64_t chunk) {
    return (size_t)(chunk * b->kp) * sizeof(uint16_t);
}

/* Buffer 0 is the GEMM's A packing buffer: free here, as no GEMM runs inside. */
int fm_bf16_dense_reserve(const fm_bf16_dense *b, int64_t rows) {
    const int64_t chunk = rows < FM_BF16_CHUNK ? (rows > 0 ? rows : 1) : FM_BF16_CHUNK;
    return fm_gemm_buffer(0, fm_bf16_bytes(b, chunk)) ? FM_OK : FM_ERR_NOMEM;
}

int fm_bf16_dense_forward(const fm_bf16_dense *b, const float *X__bi, int64_t ldx, int64_t rows,
                          const float *bias__o, float *out__bo) {
    if (rows <= 0) return FM_OK;
    const fm_bf16_kernel_table *t = fm_bf16_table();
    const int64_t chunk = rows < FM_BF16_CHUNK ? rows : FM_BF16_CHUNK;
    uint16_t *B = (uint16_t *)fm_gemm_buffer(0, fm_bf16_bytes(b, chunk));
    if (!B) return FM_ERR_NOMEM;
    for (int64_t r0 = 0; r0 < rows; r0 += chunk) {
        const int64_t n = r0 + chunk <= rows ? chunk : rows - r0;
        t->round_rows(X__bi + r0 * ldx, ldx, n, b->n_in, b->kp, B);
        t->gemm(b, B, n, bias__o, out__bo + r0 * b->n_out);
    }
    return FM_OK;
}

void fm_bf16_round_rows(const float *X__bi, int64_t ldx, int64_t rows, int64_t n_in, uint16_t *B__bi) {
    const fm_bf16_kernel_table *t = fm_bf16_table();
    const int64_t kp = (n_in + 1) / 2 * 2;
    uint16_t *row = (uint16_t *)malloc((size_t)kp * sizeof(uint16_t));
    if (!row) return;
    for (int64_t r = 0; r < rows; r++) {
        t->round_rows(X__bi + r * ldx, ldx, 1, n_in, kp, row);
        memcpy(B__bi + r * n_in, row, (size_t)n_in * sizeof(uint16_t));
    }
    free(row);
}
