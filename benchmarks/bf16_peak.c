/* Peak of vdpbf16ps (AVX-512 BF16) against vfmadd231ps (AVX-512 F) on one
 * core: 12 independent accumulators, operands in registers, so only the
 * issue rate of each instruction counts.  One vdpbf16ps does 32 multiply-adds
 * (16 lanes x 2 pairs), one vfmadd231ps 16: if vdpbf16ps issues half as often,
 * bfloat16 GEMMs on that CPU cannot be faster than float32 ones by computing
 * (the bound of the mixed_bfloat16 inference path, benchmarks/bench_bf16.py).
 *
 *     cc -O2 benchmarks/bf16_peak.c -o /tmp/bf16_peak && /tmp/bf16_peak
 *
 * Needs a CPU with AVX-512 BF16 (it says so and stops otherwise).
 */
#include <immintrin.h>
#include <stdio.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

#define STEP(f) a0 = f(a0); a1 = f(a1); a2 = f(a2); a3 = f(a3); a4 = f(a4); a5 = f(a5); \
                a6 = f(a6); a7 = f(a7); a8 = f(a8); a9 = f(a9); a10 = f(a10); a11 = f(a11)
#define SUM() _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)), \
    _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(a6, a7)), \
                  _mm512_add_ps(_mm512_add_ps(a8, a9), _mm512_add_ps(a10, a11)))))

__attribute__((target("avx512f,avx512bf16"), noinline)) static float dp_loop(long n) {
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0, a8 = a0,
           a9 = a0, a10 = a0, a11 = a0;
    __m512bh x = (__m512bh)_mm512_set1_epi32(0x3f803f80), y = (__m512bh)_mm512_set1_epi32(0x3f803f81);
#define DP(a) _mm512_dpbf16_ps(a, x, y)
    for (long i = 0; i < n; i++) {
        __asm__ volatile("" : "+v"(x), "+v"(y));
        STEP(DP);
    }
    return SUM();
}

__attribute__((target("avx512f"), noinline)) static float fma_loop(long n) {
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0, a8 = a0,
           a9 = a0, a10 = a0, a11 = a0;
    __m512 x = _mm512_set1_ps(1.0f), y = _mm512_set1_ps(1.0001f);
#define FMA(a) _mm512_fmadd_ps(x, y, a)
    for (long i = 0; i < n; i++) {
        __asm__ volatile("" : "+v"(x), "+v"(y));
        STEP(FMA);
    }
    return SUM();
}

int main(void) {
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx512bf16")) {
        puts("this CPU has no AVX-512 BF16");
        return 0;
    }
    const long n = 50000000;
    double best_dp = 1e30, best_fma = 1e30;
    float sink = 0;
    for (int r = 0; r < 5; r++) {   /* interleaved rounds, best of each */
        double t = now();
        sink += dp_loop(n);
        t = now() - t;
        if (t < best_dp) best_dp = t;
        t = now();
        sink += fma_loop(n);
        t = now() - t;
        if (t < best_fma) best_fma = t;
    }
    printf("vdpbf16ps   %.2f G instructions/s = %.1f GFLOP/s\n", 12.0 * n / best_dp * 1e-9,
           12.0 * n * 64 / best_dp * 1e-9);
    printf("vfmadd231ps %.2f G instructions/s = %.1f GFLOP/s\n", 12.0 * n / best_fma * 1e-9,
           12.0 * n * 32 / best_fma * 1e-9);
    printf("bfloat16 / float32 peak: %.2fx   (%g)\n", best_fma * 2 / best_dp, (double)sink * 0);
    return 0;
}
