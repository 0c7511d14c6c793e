/* Run-time CPU feature detection used to pick SIMD kernels.
 *
 * Each query answers whether this CPU *and* the operating system (saved
 * vector state, via XSAVE/XGETBV, which the compiler builtin checks) can run
 * code for that target.  On non-x86 architectures every query returns 0.
 */
#ifndef FASTMLP_CPU_H
#define FASTMLP_CPU_H

#ifdef __cplusplus
extern "C" {
#endif

/* AVX-512 F + DQ + BW + VL and FMA (what the "avx512" kernels are built for). */
int fm_cpu_has_avx512(void);

/* AVX2 + FMA (what the "avx2" kernels are built for). */
int fm_cpu_has_avx2_fma(void);

/* AVX-512 F + BW + VL + VNNI (vpdpbusd): the "avx512vnni" int8 kernels. */
int fm_cpu_has_avx512_vnni(void);

/* AVX-512 F + BW + VL + BF16 (vdpbf16ps): the "avx512bf16" bfloat16 kernels. */
int fm_cpu_has_avx512_bf16(void);

/* SSE4.2 (the crc32 instruction). */
int fm_cpu_has_sse42(void);

/* SSE4.2, PCLMULQDQ, AVX-512 F and VPCLMULQDQ (carry-less multiply on 512-bit
 * registers): the "avx512" CRC-32C. */
int fm_cpu_has_avx512_vpclmul(void);

#ifdef __cplusplus
}
#endif
#endif
