/* Run-time CPU feature detection (see cpu.h).
 *
 * Uses the GCC/clang builtins, which read CPUID and also check through XGETBV
 * that the OS saves the wide vector registers, so a "yes" means the kernels
 * can really run.  Other compilers and architectures report no SIMD targets,
 * leaving only the portable kernels.
 */
#include "cpu.h"

#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
#define FM_HAVE_CPU_BUILTINS 1
#endif

int fm_cpu_has_avx512(void) {
#ifdef FM_HAVE_CPU_BUILTINS
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("fma");
#else
    return 0;
#endif
}

int fm_cpu_has_avx2_fma(void) {
#ifdef FM_HAVE_CPU_BUILTINS
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return 0;
#endif
}

int fm_cpu_has_avx512_vnni(void) {
#ifdef FM_HAVE_CPU_BUILTINS
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
#else
    return 0;
#endif
}

int fm_cpu_has_avx512_bf16(void) {
#ifdef FM_HAVE_CPU_BUILTINS
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bf16");
#else
    return 0;
#endif
}

int fm_cpu_has_sse42(void) {
#ifdef FM_HAVE_CPU_BUILTINS
    __builtin_cpu_init();
    return __builtin_cpu_supports("sse4.2");
#else
    return 0;
#endif
}

int fm_cpu_has_avx512_vpclmul(void) {
#ifdef FM_HAVE_CPU_BUILTINS
    return fm_cpu_has_sse42() && __builtin_cpu_supports("pclmul") &&
           __builtin_cpu_supports("avx512f") &&
           __builtin_cpu_supports("vpclmulqdq");
#else
    return 0;
#endif
}
