/* Int8 Dense driver (qgemm.h): packs kernels, picks the target once from
 * run-time CPU detection ("avx512vnni" > "avx2" > "generic";
 * fm_q8_set_target() forces one for tests), and runs a forward in chunks of
 * rows so that a chunk's quantized rows stay in cache while the kernel reads
 * them. */
#include "qgemm_kernels.h"
#include "gemm_kernels.h"   /* fm_gemm_buffer */
#include "cpu.h"
#include "fastmlp.h"

#include <stdlib.h>
#include <string.h>

#define FM_Q8_CHUNK 256

static const fm_q8_kernel_table *fm_q8_detect(void) {
#if defined(__x86_64__) || defined(__i386__)
    if (fm_cpu_has_avx512_vnni()) return &fm_q8_table_vnni;
    if (fm_cpu_has_avx2_fma()) return &fm_q8_table_avx2;
#endif
    return &fm_q8_table_generic;
}

static const fm_q8_kernel_table *g_q8 = NULL;

static const fm_q8_kernel_table *fm_q8_table(void) {
    const fm_q8_kernel_table *t = __atomic_load_n(&g_q8, __ATOMIC_ACQUIRE);
    if (!t) {   /* benign race: every thread computes the same answer */
        t = fm_q8_detect();
        __atomic_store_n(&g_q8, t, __ATOMIC_RELEASE);
    }
    return t;
}

const char *fm_q8_target_name(void) { return fm_q8_table()->name; }

int fm_q8_set_target(const char *name) {
    const fm_q8_kernel_table *t = NULL;
    if (!name) return -1;
    if (strcmp(name, "auto") == 0) t = fm_q8_detect();
    else if (strcmp(name, "generic") == 0) t = &fm_q8_table_generic;
#if defined(__x86_64__) || defined(__i386__)
    else if (strcmp(name, "avx2") == 0) t = fm_cpu_has_avx2_fma() ? &fm_q8_table_avx2 : NULL;
    else if (strcmp(name, "avx512vnni") == 0) t = fm_cpu_has_avx512_vnni() ? &fm_q8_table_vnni : NULL;
#endif
    if (!t) return -1;
    __atomic_store_n(&g_q8, t, __ATOMIC_RELEASE);
    return 0;
}


fm_q8_dense *fm_q8_dense_create(const int8_t *W__io, const float *scale__o, int64_t n_in, int64_t n_out,
                                int *status) {
    *status = FM_ERR_ARG;
    if (!W__io || !scale__o || n_in <= 0 || n_out <= 0 || n_in > FM_Q8_MAX_IN || n_out > (INT64_C(1) << 40))
        return NULL;
    for (int64_t i = 0; i < n_in * n_out; i++) if (W__io[i] == -128) return NULL;
    *status = FM_ERR_NOMEM;
    fm_q8_dense *q = (fm_q8_dense *)calloc(1, sizeof *q);
    if (!q) return NULL;
    q->n_in = n_in;
    q->n_out = n_out;
    q->kp = (n_in + 3) / 4 * 4;
    q->np = (n_out + 15) / 16 * 16;
    q->w = (int8_t *)fm_aligned64((size_t)(q->kp * q->np));
    q->colsum128 = (int32_t *)fm_aligned64((size_t)q->np * sizeof(int32_t));
    q->scale = (float *)fm_aligned64((size_t)q->np * sizeof(float));
    if (!q->w || !q->colsum128 || !q->scale) {
        fm_q8_dense_free(q);
        return NULL;
    }
    *status = fm_q8_dense_update(q, W__io, scale__o);
    return q;
}

int fm_q8_dense_update(fm_q8_dense *q, const int8_t *W__io, const float *scale__o) {
    const int64_t n_in = q->n_in, n_out = q->n_out, groups = q->kp / 4;
    for (int64_t i = 0; i < n_in * n_out; i++) if (W__io[i] == -128) return FM_ERR_ARG;
    memset(q->w, 0, (size_t)(q->kp * q->np));
    for (int64_t j = 0; j < q->np; j++) {
        int32_t sum = 0;
        if (j < n_out)
            for (int64_t k = 0; k < n_in; k++) {
                const int8_t v = W__io[k * n_out + j];
                q->w[((j / 16) * groups + k / 4) * 64 + (j % 16) * 4 + k % 4] = v;
                sum += v;
            }
        q->colsum128[j] = 128 * sum;
        q->scale[j] = j < n_out ? scale__o[j] : 0.0f;
    }
    return FM_OK;
}

void fm_q8_dense_free(fm_q8_dense *q) {
    if (!q) return;
    fm_aligned64_free(q->w);
    fm_aligned64_free(q->colsum128);
    fm_aligned64_free(q->scale);
    free(q);
}

int64_t fm_q8_dense_n_in(const fm_q8_dense *q) { return q->n_in; }
int64_t fm_q8_dense_n_out(const fm_q8_dense *q) { return q->n_out; }

static size_t fm_q8_qbytes(const fm_q8_dense *q, int64_t chunk) {
    return ((size_t)(chunk * q->kp) + 63) & ~(size_t)63;
}

/* Buffer 0 is the GEMM's A packing buffer: free here, as no GEMM runs inside. */
int fm_q8_dense_reserve(const fm_q8_dense *q, int64_t rows) {
    const int64_t chunk = rows < FM_Q8_CHUNK ? (rows > 0 ? rows : 1) : FM_Q8_CHUNK;
    return fm_gemm_buffer(0, fm_q8_qbytes(q, chunk) + (size_t)chunk * sizeof(float)) ? FM_OK : FM_ERR_NOMEM;
}

int fm_q8_dense_forward(const fm_q8_dense *q, const float *X__bi, int64_t ldx, int64_t rows,
                        const float *bias__o, float *out__bo) {
    if (rows <= 0) return FM_OK;
    const fm_q8_kernel_table *t = fm_q8_table();
    const int64_t chunk = rows < FM_Q8_CHUNK ? rows : FM_Q8_CHUNK;
    const size_t qbytes = fm_q8_qbytes(q, chunk);
    uint8_t *Q = (uint8_t *)fm_gemm_buffer(0, qbytes + (size_t)chunk * sizeof(float));
    if (!Q) return FM_ERR_NOMEM;
    float *s = (float *)(Q + qbytes);
    for (int64_t r0 = 0; r0 < rows; r0 += chunk) {
        const int64_t n = r0 + chunk <= rows ? chunk : rows - r0;
        t->quantize(X__bi + r0 * ldx, ldx, n, q->n_in, q->kp, Q, s);
        t->gemm(q, Q, s, n, bias__o, out__bo + r0 * q->n_out);
    }
    return FM_OK;
}

void fm_q8_quantize_rows(const float *X__bi, int64_t ldx, int64_t rows, int64_t n_in, int8_t *Q__bi,
                         float *s__b) {
    const fm_q8_kernel_table *t = fm_q8_table();
    const int64_t kp = (n_in + 3) / 4 * 4;
    uint8_t *row = (uint8_t *)malloc((size_t)kp);
    if (!row) return;
    for (int64_t r = 0; r < rows; r++) {
        t->quantize(X__bi + r * ldx, ldx, 1, n_in, kp, row, &s__b[r]);
        for (int64_t k = 0; k < n_in; k++)
            Q__bi[r * n_in + k] = t->offset ? (int8_t)((int)row[k] - 128) : (int8_t)row[k];
    }
    free(row);
}
