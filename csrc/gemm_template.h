/* GEMM kernels written once over a tiny vector abstraction, instantiated by
 * each target file (gemm_avx512.c, gemm_avx2.c, gemm_generic.c) for float32
 * and float64.  Row-major throughout:  C[M,N] = alpha*op(A)[M,K]@op(B)[K,N]
 * + beta*C, vectors run along N (a row of C), A values are broadcast.
 *
 * The including file defines, then includes this header (it #undefs them):
 *   FMT_T                 element type (float / double)
 *   FMT_V, FMT_VL         vector type and its lane count
 *   FMT_ZERO()            all-zero vector
 *   FMT_SET1(x)           broadcast a scalar
 *   FMT_LOAD(p)           unaligned load of FMT_VL lanes
 *   FMT_LOADN(p, n)       load lanes [0, n), zero the rest (1 <= n <= FMT_VL)
 *   FMT_STORE(p, v)       unaligned store of FMT_VL lanes
 *   FMT_STOREN(p, v, n)   store lanes [0, n) only
 *   FMT_FMA(a, b, c)      a*b + c
 *   FMT_MUL(a, b)         a*b
 *   FMT_MR, FMT_NV        micro-tile: MR rows of C by NV vectors (NR = NV*VL)
 *   FMT_MC, FMT_KC, FMT_NC  cache blocking of the packed path
 *   FMT_SNV               small path: most vectors per column block
 *   FMT_SR(nv)            small path: rows per block for nv vectors
 *   FMT_NAME(x)           symbol name for x (adds target and type)
 *   FMT_TRANSPOSE(r)      optional: transpose FMT_V r[FMT_VL] (a VL x VL block)
 *                         in registers; packs transposed operands with it
 *
 * Provides FMT_NAME(packed) and FMT_NAME(small) with the fm_gemm_*_fn
 * signature of gemm_kernels.h.  Both run the epilogue right after the last K
 * block of a piece of C is stored, while it is in L1: the packed path on each
 * MC x NR column panel (one call per MC/MR micro-tiles; per micro-tile measured
 * no faster), the small path on each block of rows x up to SNV vectors.
 *
 * Summation order, the same on every path: K is cut into equal blocks of at
 * most FMT_KC (a function of K alone); within a block each C element is one
 * chain of fused multiply-adds over k in increasing order, from zero; block
 * sums are added to C in order (C = alpha*s_1 [+ beta*C], then C = C +
 * alpha*s_b).  So an element's value depends neither on where its tile lies
 * nor on M, the path (small or packed) or the thread split: a row computes
 * the same alone or in any batch.
 */

#include <math.h>

/* One rounding of a*b + c in the element type (the fallback's FMA). */
static inline FMT_T FMT_NAME(sfma)(FMT_T a, FMT_T b, FMT_T c) {
    return sizeof(FMT_T) == sizeof(float) ? (FMT_T)fmaf((float)a, (float)b, (float)c)
                                          : (FMT_T)fma((double)a, (double)b, (double)c);
}

/* The K blocks of every path: kblocks equal blocks of kc_even (the last may be shorter). */
static inline int64_t FMT_NAME(k_block)(int64_t K) {
    int64_t kblocks = (K + FMT_KC - 1) / FMT_KC;
    return kblocks > 0 ? (K + kblocks - 1) / kblocks : 1;
}

#define FMT_NR (FMT_NV * FMT_VL)

#ifndef FM_ALWAYS_INLINE
#define FM_ALWAYS_INLINE __attribute__((always_inline))
#endif

/* ------------------------------------------------------------------------ */
/* Micro-kernel: C[m,n] (m <= MR, n <= NR, row stride ldc) =
 *   alpha * Apanel[MR,k] @ Bpanel[k,NR] + beta * C     (beta == 0: C not read)
 * Apanel is packed k-major with MR values per k; Bpanel with NR values per k;
 * both are zero padded, so partial tiles just store fewer lanes.            */
static inline FM_ALWAYS_INLINE void
FMT_NAME(ukr)(int64_t k, const FMT_T *restrict a, const FMT_T *restrict b,
              FMT_T *restrict c, int64_t ldc, FMT_T alpha, FMT_T beta, int m, int n)
{
    FMT_V acc[FMT_MR][FMT_NV];
#pragma GCC unroll 16
    for (int i = 0; i < FMT_MR; i++)
#pragma GCC unroll 8
        for (int v = 0; v < FMT_NV; v++) acc[i][v] = FMT_ZERO();

#pragma GCC unroll 16
    for (int i = 0; i < FMT_MR; i++) {
        __builtin_prefetch(c + i * ldc, 1, 3);
        __builtin_prefetch(c + i * ldc + FMT_NR - 1, 1, 3);
    }

#pragma GCC unroll 4
    for (int64_t p = 0; p < k; p++) {
        FMT_V bv[FMT_NV];
#pragma GCC unroll 8
        for (int v = 0; v < FMT_NV; v++) bv[v] = FMT_LOAD(b + v * FMT_VL);
#pragma GCC unroll 16
        for (int i = 0; i < FMT_MR; i++) {
            FMT_V av = FMT_SET1(a[i]);
#pragma GCC unroll 8
            for (int v = 0; v < FMT_NV; v++) acc[i][v] = FMT_FMA(av, bv[v], acc[i][v]);
        }
        a += FMT_MR;
        b += FMT_NR;
    }

    FMT_V va = FMT_SET1(alpha);
    if (m == FMT_MR && n == FMT_NR) {
        if (beta == (FMT_T)0) {
#pragma GCC unroll 16
            for (int i = 0; i < FMT_MR; i++)
#pragma GCC unroll 8
                for (int v = 0; v < FMT_NV; v++)
                    FMT_STORE(c + i * ldc + v * FMT_VL, FMT_MUL(va, acc[i][v]));
        } else {
            FMT_V vb = FMT_SET1(beta);
#pragma GCC unroll 16
            for (int i = 0; i < FMT_MR; i++)
#pragma GCC unroll 8
                for (int v = 0; v < FMT_NV; v++) {
                    FMT_T *cp = c + i * ldc + v * FMT_VL;
                    FMT_STORE(cp, FMT_FMA(vb, FMT_LOAD(cp), FMT_MUL(va, acc[i][v])));
                }
        }
        return;
    }
    /* Partial tile. */
    FMT_V vb = FMT_SET1(beta);
#pragma GCC unroll 16
    for (int i = 0; i < FMT_MR; i++) {
        if (i >= m) break;
#pragma GCC unroll 8
        for (int v = 0; v < FMT_NV; v++) {
            int nn = n - v * FMT_VL;
            if (nn <= 0) break;
            if (nn > FMT_VL) nn = FMT_VL;
            FMT_T *cp = c + i * ldc + v * FMT_VL;
            FMT_V r = FMT_MUL(va, acc[i][v]);
            if (beta != (FMT_T)0) r = FMT_FMA(vb, FMT_LOADN(cp, nn), r);
            FMT_STOREN(cp, r, nn);
        }
    }
}

/* ------------------------------------------------------------------------ */
/* Packing.  A block (mc x kc of op(A)) becomes ceil(mc/MR) panels, each
 * kc x MR (k-major); B block (kc x nc of op(B)) becomes ceil(nc/NR) panels,
 * each kc x NR.  Missing rows / columns of the last panel are zero.        */
#ifdef FMT_TRANSPOSE
/* One VL x VL block through registers: dst[q*lds + i] = src[i*ld + q] for
 * i < rows (0 for rows <= i < VL) and q < kk, lanes [0, w) of each dst row
 * stored.  Packed element by element, op(B) = W^T made a dense layer's
 * dX = dZ W^T run 8-22% slower than the same-sized forward GEMM (AVX-512,
 * float32, 256x512x512 to 128x2048x2048); this way, 0-10%. */
static inline FM_ALWAYS_INLINE void
FMT_NAME(tr_block)(const FMT_T *src, int64_t ld, int rows, int kk, FMT_T *restrict dst,
                   int64_t lds, int w)
{
    FMT_V r[FMT_VL];
#pragma GCC unroll 16
    for (int i = 0; i < FMT_VL; i++)
        r[i] = i >= rows ? FMT_ZERO()
               : kk == FMT_VL ? FMT_LOAD(src + i * ld) : FMT_LOADN(src + i * ld, kk);
    FMT_TRANSPOSE(r);
#pragma GCC unroll 16
    for (int q = 0; q < FMT_VL; q++) {
        if (q >= kk) break;
        if (w == FMT_VL) FMT_STORE(dst + q * lds, r[q]);
        else FMT_STOREN(dst + q * lds, r[q], w);
    }
}

/* dst[p*lds + i] = src[i*ld + p] for p < kc, i < w (0 from row `rows` on):
 * VL x VL blocks, full ones with constant sizes. */
static inline FM_ALWAYS_INLINE void
FMT_NAME(tr_rows)(const FMT_T *src, int64_t ld, int rows, int64_t kc, FMT_T *restrict dst,
                  int64_t lds, int w)
{
    int64_t p = 0;
    if (rows == w)
        for (; p + FMT_VL <= kc; p += FMT_VL)
            FMT_NAME(tr_block)(src + p, ld, w, FMT_VL, dst + p * lds, lds, w);
    for (; p < kc; p += FMT_VL) {
        int kk = (int)(kc - p < FMT_VL ? kc - p : FMT_VL);
        FMT_NAME(tr_block)(rows > 0 ? src + p : src, ld, rows, kk, dst + p * lds, lds, w);
    }
}
#endif

static void FMT_NAME(pack_a)(int ta, int64_t mc, int64_t kc, const FMT_T *A, int64_t lda,
                             FMT_T *restrict ap)
{
    for (int64_t i0 = 0; i0 < mc; i0 += FMT_MR, ap += FMT_MR * kc) {
        int64_t mr = mc - i0 < FMT_MR ? mc - i0 : FMT_MR;
        if (ta) { /* op(A)[i,k] = A[k*lda + i]: MR contiguous values per k */
            const FMT_T *src = A + i0;
            if (mr == FMT_MR) {
                for (int64_t p = 0; p < kc; p++)
#pragma GCC unroll 16
                    for (int i = 0; i < FMT_MR; i++) ap[p * FMT_MR + i] = src[p * lda + i];
            } else {
                for (int64_t p = 0; p < kc; p++)
                    for (int i = 0; i < FMT_MR; i++)
                        ap[p * FMT_MR + i] = i < mr ? src[p * lda + i] : (FMT_T)0;
            }
        } else { /* op(A)[i,k] = A[i*lda + k]: transpose MR rows */
            const FMT_T *src = A + i0 * lda;
#ifdef FMT_TRANSPOSE
#pragma GCC unroll 4
            for (int g = 0; g < FMT_MR; g += FMT_VL) { /* VL rows at a time */
                const int w = FMT_MR - g < FMT_VL ? FMT_MR - g : FMT_VL;
                const int rows = mr - g < 0 ? 0 : mr - g < w ? (int)(mr - g) : w;
                FMT_NAME(tr_rows)(rows > 0 ? src + g * lda : src, lda, rows, kc, ap + g, FMT_MR, w);
            }
#else
            if (mr == FMT_MR) {
                const FMT_T *rows[FMT_MR];
                for (int i = 0; i < FMT_MR; i++) rows[i] = src + i * lda;
                for (int64_t p = 0; p < kc; p++)
#pragma GCC unroll 16
                    for (int i = 0; i < FMT_MR; i++) ap[p * FMT_MR + i] = rows[i][p];
            } else {
                for (int64_t p = 0; p < kc; p++)
                    for (int i = 0; i < FMT_MR; i++)
                        ap[p * FMT_MR + i] = i < mr ? src[i * lda + p] : (FMT_T)0;
            }
#endif
        }
    }
}

static void FMT_NAME(pack_b)(int tb, int64_t kc, int64_t nc, const FMT_T *B, int64_t ldb,
                             FMT_T *restrict bp)
{
    if (!tb) { /* op(B)[k,j] = B[k*ldb + j]: NR contiguous values per k */
        /* Full panels row by row, each row of B read in one sweep: a panel
         * at a time took NR values from kc rows a page or more apart, which
         * the prefetchers do not follow (128x2048 @ 2048x2048 ran 5-10%
         * slower, AVX-512). */
        const int64_t nfull = nc / FMT_NR * FMT_NR;
        for (int64_t p = 0; p < kc; p++) {
            const FMT_T *src = B + p * ldb;
            FMT_T *dst = bp + p * FMT_NR;
            for (int64_t j0 = 0; j0 < nfull; j0 += FMT_NR, dst += FMT_NR * kc)
#pragma GCC unroll 8
                for (int v = 0; v < FMT_NV; v++)
                    FMT_STORE(dst + v * FMT_VL, FMT_LOAD(src + j0 + v * FMT_VL));
        }
        if (nfull < nc) {
            const int64_t nr = nc - nfull;
            const FMT_T *src = B + nfull;
            FMT_T *dst = bp + nfull * kc;
            for (int64_t p = 0; p < kc; p++)
                for (int j = 0; j < FMT_NR; j++)
                    dst[p * FMT_NR + j] = j < nr ? src[p * ldb + j] : (FMT_T)0;
        }
        return;
    }
    for (int64_t j0 = 0; j0 < nc; j0 += FMT_NR, bp += FMT_NR * kc) {
        int64_t nr = nc - j0 < FMT_NR ? nc - j0 : FMT_NR;
        /* op(B)[k,j] = B[j*ldb + k]: transpose NR rows */
        const FMT_T *src = B + j0 * ldb;
#ifdef FMT_TRANSPOSE
#pragma GCC unroll 8
        for (int v = 0; v < FMT_NV; v++) { /* VL rows at a time */
            const int rows = nr - v * FMT_VL < 0 ? 0 : nr - v * FMT_VL < FMT_VL ? (int)(nr - v * FMT_VL) : FMT_VL;
            FMT_NAME(tr_rows)(rows > 0 ? src + v * FMT_VL * ldb : src, ldb, rows, kc, bp + v * FMT_VL,
                              FMT_NR, FMT_VL);
        }
#else
        for (int j = 0; j < FMT_NR; j++) {
            if (j < nr) {
                const FMT_T *row = src + j * ldb;
                for (int64_t p = 0; p < kc; p++) bp[p * FMT_NR + j] = row[p];
            } else {
                for (int64_t p = 0; p < kc; p++) bp[p * FMT_NR + j] = (FMT_T)0;
            }
        }
#endif
    }
}

/* Plain loops, used only if a packing buffer cannot be allocated. */
static void FMT_NAME(fallback)(int ta, int tb, int64_t M, int64_t N, int64_t K, FMT_T alpha,
                               const FMT_T *A, int64_t lda, const FMT_T *B, int64_t ldb,
                               FMT_T beta, FMT_T *C, int64_t ldc, const fm_epilogue *ep)
{
    const int64_t kc_even = FMT_NAME(k_block)(K);
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            FMT_T *cp = C + i * ldc + j;
            FMT_T c = beta == (FMT_T)0 ? (FMT_T)0 : *cp;
            for (int64_t pc = 0; pc < K || pc == 0; pc += kc_even) {
                FMT_T s = 0;
                for (int64_t p = pc; p < K && p < pc + kc_even; p++)
                    s = FMT_NAME(sfma)(ta ? A[p * lda + i] : A[i * lda + p], tb ? B[j * ldb + p] : B[p * ldb + j], s);
                c = pc == 0 ? (beta == (FMT_T)0 ? alpha * s : FMT_NAME(sfma)(beta, c, alpha * s)) : c + alpha * s;
                if (K == 0) break;
            }
            *cp = c;
        }
    if (ep) ep->apply(ep, C, ldc, M, N);
}

/* ------------------------------------------------------------------------ */
/* Packed, cache-blocked GEMM on the calling thread.
 * Loops: jc (NC columns) > pc (KC depth, pack B) > ic (MC rows, pack A)
 *        > jr (NR panel of B stays in L1) > ir (MR panel of A from L2).    */
static void FMT_NAME(packed)(int ta, int tb, int64_t M, int64_t N, int64_t K, FMT_T alpha,
                             const FMT_T *A, int64_t lda, const FMT_T *B, int64_t ldb,
                             FMT_T beta, FMT_T *C, int64_t ldc, const fm_epilogue *ep)
{
    int64_t kc_max = K < FMT_KC ? K : FMT_KC;
    int64_t mc_max = M < FMT_MC ? M : FMT_MC;
    int64_t nc_max = N < FMT_NC ? N : FMT_NC;
    mc_max = (mc_max + FMT_MR - 1) / FMT_MR * FMT_MR;
    nc_max = (nc_max + FMT_NR - 1) / FMT_NR * FMT_NR;
    FMT_T *ap = (FMT_T *)fm_gemm_buffer(0, (size_t)(mc_max * kc_max) * sizeof(FMT_T));
    FMT_T *bp = (FMT_T *)fm_gemm_buffer(1, (size_t)(nc_max * kc_max) * sizeof(FMT_T));
    if (!ap || !bp) {
        FMT_NAME(fallback)(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, ep);
        return;
    }

    /* Equal-sized K blocks (no short last block), at most FMT_KC deep. */
    const int64_t kc_even = FMT_NAME(k_block)(K);
    for (int64_t jc = 0; jc < N; jc += FMT_NC) {
        int64_t nc = N - jc < FMT_NC ? N - jc : FMT_NC;
        for (int64_t pc = 0; pc < K; pc += kc_even) {
            int64_t kc = K - pc < kc_even ? K - pc : kc_even;
            FMT_T beta_k = pc == 0 ? beta : (FMT_T)1;
            const fm_epilogue *ep_k = pc + kc >= K ? ep : NULL; /* C final after this block */
            const FMT_T *bsrc = tb ? B + jc * ldb + pc : B + pc * ldb + jc;
            FMT_NAME(pack_b)(tb, kc, nc, bsrc, ldb, bp);
            for (int64_t ic = 0; ic < M; ic += FMT_MC) {
                int64_t mc = M - ic < FMT_MC ? M - ic : FMT_MC;
                const FMT_T *asrc = ta ? A + pc * lda + ic : A + ic * lda + pc;
                FMT_NAME(pack_a)(ta, mc, kc, asrc, lda, ap);
                for (int64_t jr = 0; jr < nc; jr += FMT_NR) {
                    int n = (int)(nc - jr < FMT_NR ? nc - jr : FMT_NR);
                    const FMT_T *bpan = bp + jr * kc;
                    FMT_T *cpan = C + ic * ldc + jc + jr;
                    for (int64_t ir = 0; ir < mc; ir += FMT_MR) {
                        int m = (int)(mc - ir < FMT_MR ? mc - ir : FMT_MR);
                        FMT_NAME(ukr)(kc, ap + ir * kc, bpan, cpan + ir * ldc, ldc, alpha, beta_k, m, n);
                    }
                    if (ep_k) ep_k->apply(ep_k, cpan, ldc, mc, n);
                }
            }
        }
    }
}

/* ------------------------------------------------------------------------ */
/* Small path: C[R rows, n <= NVB*VL cols] from A and B in place (op(B) = B),
 * K block by K block as the packed path does (one chain of FMAs per element
 * and block, block sums added to C in order), so both give the same bits. */
static inline FM_ALWAYS_INLINE void
FMT_NAME(small_block)(const int R, const int NVB, int64_t sai, int64_t sak,
                      int64_t K, const FMT_T *A, const FMT_T *B, int64_t ldb,
                      FMT_T *C, int64_t ldc, FMT_T alpha, FMT_T beta, int n)
{
    /* Fixed maximal sizes (R <= 8, NVB <= 4) so that, once inlined with constant
     * R / NVB and unrolled, the arrays live in registers. */
    FMT_V acc[8][4];
    const int lastn = n - (NVB - 1) * FMT_VL; /* lanes used in the last vector */
    const FMT_T *arow[8];
#pragma GCC unroll 16
    for (int r = 0; r < R; r++) arow[r] = A + r * sai;
    const int64_t kc_even = FMT_NAME(k_block)(K);
    FMT_V va = FMT_SET1(alpha), vb = FMT_SET1(beta);

    for (int64_t pc = 0; pc < K || pc == 0; pc += kc_even) {
        const int64_t kend = K - pc < kc_even ? K : pc + kc_even;
#pragma GCC unroll 16
        for (int r = 0; r < R; r++)
#pragma GCC unroll 8
            for (int v = 0; v < NVB; v++) acc[r][v] = FMT_ZERO();
        for (int64_t k = pc; k < kend; k++) {
            const FMT_T *brow = B + k * ldb;
            FMT_V bv[4];
#pragma GCC unroll 8
            for (int v = 0; v < NVB - 1; v++) bv[v] = FMT_LOAD(brow + v * FMT_VL);
            bv[NVB - 1] = FMT_LOADN(brow + (NVB - 1) * FMT_VL, lastn);
#pragma GCC unroll 16
            for (int r = 0; r < R; r++) {
                FMT_V av = FMT_SET1(arow[r][k * sak]);
#pragma GCC unroll 8
                for (int v = 0; v < NVB; v++) acc[r][v] = FMT_FMA(av, bv[v], acc[r][v]);
            }
        }
        /* C = alpha*s (+ beta*C) for the first block, C + alpha*s after: the packed path's stores */
        const FMT_V vc = pc == 0 ? vb : FMT_SET1((FMT_T)1);
        const int read = pc != 0 || beta != (FMT_T)0;
#pragma GCC unroll 16
        for (int r = 0; r < R; r++) {
#pragma GCC unroll 8
            for (int v = 0; v < NVB; v++) {
                FMT_T *cp = C + r * ldc + v * FMT_VL;
                FMT_V res = FMT_MUL(va, acc[r][v]);
                if (v < NVB - 1) {
                    if (read) res = FMT_FMA(vc, FMT_LOAD(cp), res);
                    FMT_STORE(cp, res);
                } else {
                    if (read) res = FMT_FMA(vc, FMT_LOADN(cp, lastn), res);
                    FMT_STOREN(cp, res, lastn);
                }
            }
        }
        if (K == 0) break;
    }
}

/* Blocks of up to FMT_SNV vectors of columns, FMT_SR(nv) rows each; the
 * switch turns (rows, vectors) into compile-time constants.  Only tb == 0. */
static void FMT_NAME(small)(int ta, int tb, int64_t M, int64_t N, int64_t K, FMT_T alpha,
                            const FMT_T *A, int64_t lda, const FMT_T *B, int64_t ldb,
                            FMT_T beta, FMT_T *C, int64_t ldc, const fm_epilogue *ep)
{
    (void)tb;
    const int64_t sai = ta ? 1 : lda, sak = ta ? lda : 1;
    const int64_t jstep = FMT_SNV * FMT_VL;
    for (int64_t j0 = 0; j0 < N; j0 += jstep) {
        int n = (int)(N - j0 < jstep ? N - j0 : jstep);
        int nv = (n + FMT_VL - 1) / FMT_VL;
        int R = nv == 1 ? FMT_SR(1) : nv == 2 ? FMT_SR(2) : nv == 3 ? FMT_SR(3) : FMT_SR(4);
        for (int64_t i0 = 0; i0 < M; i0 += R) {
            int r = (int)(M - i0 < R ? M - i0 : R);
            const FMT_T *a = A + i0 * sai;
            const FMT_T *b = B + j0;
            FMT_T *c = C + i0 * ldc + j0;
#define FMT_SB(RR, NN)                                                                 \
    case (RR) * 8 + (NN):                                                              \
        if ((NN) <= FMT_SNV && (RR) <= FMT_SR(NN))                                    \
            FMT_NAME(small_block)((RR), (NN), sai, sak, K, a, b, ldb, c, ldc, alpha,     \
                                  beta, n);                                           \
        break;
#define FMT_SB_ROW(RR) FMT_SB(RR, 1) FMT_SB(RR, 2) FMT_SB(RR, 3) FMT_SB(RR, 4)
            switch (r * 8 + nv) {
                FMT_SB_ROW(1) FMT_SB_ROW(2) FMT_SB_ROW(3) FMT_SB_ROW(4)
                FMT_SB_ROW(5) FMT_SB_ROW(6) FMT_SB_ROW(7) FMT_SB_ROW(8)
            default: break;
            }
            if (ep) ep->apply(ep, c, ldc, r, n);
#undef FMT_SB_ROW
#undef FMT_SB
        }
    }
}

#undef FMT_NR
#undef FMT_T
#undef FMT_V
#undef FMT_VL
#undef FMT_ZERO
#undef FMT_SET1
#undef FMT_LOAD
#undef FMT_LOADN
#undef FMT_STORE
#undef FMT_STOREN
#undef FMT_FMA
#undef FMT_MUL
#undef FMT_MR
#undef FMT_NV
#undef FMT_MC
#undef FMT_KC
#undef FMT_NC
#undef FMT_SNV
#undef FMT_SR
#undef FMT_NAME
#undef FMT_TRANSPOSE
