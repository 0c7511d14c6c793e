/* CRC-32C for the model file format (see checksum.h and docs/FORMAT.md).
 *
 * Portable path: slicing-by-8 tables (about 1-2 GB/s).
 * x86-64 path: the SSE4.2 crc32 instruction on three independent streams, to
 * hide its 3-cycle latency, combined with a carry-less multiply in software
 * (one per block).  That path is compiled for SSE4.2 by a target attribute on
 * its function only and chosen at run time, so the extension still runs on
 * CPUs without it.
 */
#include "checksum.h"
#include "gemm.h"   /* fm_get_num_threads */

#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#if (defined(__x86_64__) || defined(_M_X64)) && defined(__GNUC__)
#define FM_CRC_X86 1
#include <nmmintrin.h>
#endif

#define FM_CRC_POLY 0x82F63B78u

static uint32_t fm_crc_table[8][256];
static uint32_t fm_x2n[64];          /* x^(2^k) mod P */
static uint32_t fm_k_long, fm_k_short; /* x^(8 * block) mod P for the 3-way blocks */
static int fm_crc_ready = 0;
static int fm_crc_hw = 0;

#define FM_LONG 8192
#define FM_SHORT 256
#define FM_PAR_MIN ((size_t)4 << 20) /* split across threads from 4 MiB */

/* a * b mod P (reflected: bit 31 is x^0). */
static uint32_t fm_multmodp(uint32_t a, uint32_t b) {
    uint32_t m = (uint32_t)1 << 31, p = 0;
    for (;;) {
        if (a & m) {
            p ^= b;
            if ((a & (m - 1)) == 0) break;
        }
        m >>= 1;
        b = (b & 1) ? (b >> 1) ^ FM_CRC_POLY : b >> 1;
    }
    return p;
}

/* x^(n * 2^k) mod P. */
static uint32_t fm_x2nmodp(uint64_t n, unsigned k) {
    uint32_t p = (uint32_t)1 << 31; /* x^0 */
    while (n) {
        if (n & 1) p = fm_multmodp(fm_x2n[k & 63], p);
        n >>= 1;
        k++;
    }
    return p;
}

#ifdef FM_CRC_X86
static int fm_cpu_has_sse42(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("sse4.2");
}
#endif

void fm_crc32c_init(void) {
    if (fm_crc_ready) return;
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ FM_CRC_POLY : c >> 1;
        fm_crc_table[0][n] = c;
    }
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = fm_crc_table[0][n];
        for (int k = 1; k < 8; k++) {
            c = fm_crc_table[0][c & 0xff] ^ (c >> 8);
            fm_crc_table[k][n] = c;
        }
    }
    uint32_t p = (uint32_t)1 << 30; /* x^1 */
    fm_x2n[0] = p;
    for (int n = 1; n < 64; n++) fm_x2n[n] = p = fm_multmodp(p, p);
    fm_k_long = fm_x2nmodp(FM_LONG, 3);
    fm_k_short = fm_x2nmodp(FM_SHORT, 3);
#ifdef FM_CRC_X86
    fm_crc_hw = fm_cpu_has_sse42();
#endif
    fm_crc_ready = 1;
}

/* Raw register update (no pre/post inversion), portable slicing-by-8. */
static uint32_t fm_crc_sw_raw(uint32_t crc, const unsigned char *p, size_t len) {
    while (len && ((uintptr_t)p & 7)) {
        crc = fm_crc_table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
        len--;
    }
    while (len >= 8) {
        uint32_t lo, hi;
        memcpy(&lo, p, 4);
        memcpy(&hi, p + 4, 4);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
        lo = __builtin_bswap32(lo);
        hi = __builtin_bswap32(hi);
#endif
        lo ^= crc;
        crc = fm_crc_table[7][lo & 0xff] ^ fm_crc_table[6][(lo >> 8) & 0xff] ^
              fm_crc_table[5][(lo >> 16) & 0xff] ^ fm_crc_table[4][lo >> 24] ^
              fm_crc_table[3][hi & 0xff] ^ fm_crc_table[2][(hi >> 8) & 0xff] ^
              fm_crc_table[1][(hi >> 16) & 0xff] ^ fm_crc_table[0][hi >> 24];
        p += 8;
        len -= 8;
    }
    while (len--) crc = fm_crc_table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return crc;
}

#ifdef FM_CRC_X86
/* Three interleaved CRC streams over consecutive blocks of `block` bytes (hiding
 * the instruction's latency), combined by multiplying with x^(8*block) mod P. */
__attribute__((target("sse4.2")))
static inline uint64_t fm_crc_hw_3way(uint64_t crc0, const unsigned char *p, size_t block,
                                      uint32_t k) {
    uint64_t crc1 = 0, crc2 = 0;
    const unsigned char *end = p + block;
    do {
        uint64_t a, b, c;
        memcpy(&a, p, 8);
        memcpy(&b, p + block, 8);
        memcpy(&c, p + 2 * block, 8);
        crc0 = _mm_crc32_u64(crc0, a);
        crc1 = _mm_crc32_u64(crc1, b);
        crc2 = _mm_crc32_u64(crc2, c);
        p += 8;
    } while (p < end);
    crc0 = fm_multmodp(k, (uint32_t)crc0) ^ (uint32_t)crc1;
    return fm_multmodp(k, (uint32_t)crc0) ^ (uint32_t)crc2;
}

__attribute__((target("sse4.2")))
static uint32_t fm_crc_hw_raw(uint32_t crc32, const unsigned char *p, size_t len) {
    uint64_t crc0 = crc32;
    while (len && ((uintptr_t)p & 7)) {
        crc0 = _mm_crc32_u8((uint32_t)crc0, *p++);
        len--;
    }
    while (len >= 3 * FM_LONG) {
        crc0 = fm_crc_hw_3way(crc0, p, FM_LONG, fm_k_long);
        p += 3 * FM_LONG;
        len -= 3 * FM_LONG;
    }
    while (len >= 3 * FM_SHORT) {
        crc0 = fm_crc_hw_3way(crc0, p, FM_SHORT, fm_k_short);
        p += 3 * FM_SHORT;
        len -= 3 * FM_SHORT;
    }
    while (len >= 8) {
        uint64_t a;
        memcpy(&a, p, 8);
        crc0 = _mm_crc32_u64(crc0, a);
        p += 8;
        len -= 8;
    }
    while (len--) crc0 = _mm_crc32_u8((uint32_t)crc0, *p++);
    return (uint32_t)crc0;
}
#endif

static uint32_t fm_crc_raw(uint32_t crc, const unsigned char *p, size_t len) {
#ifdef FM_CRC_X86
    if (fm_crc_hw) return fm_crc_hw_raw(crc, p, len);
#endif
    return fm_crc_sw_raw(crc, p, len);
}

uint32_t fm_crc32c_combine(uint32_t crc_a, uint32_t crc_b, size_t len_b) {
    fm_crc32c_init();
    return fm_multmodp(fm_x2nmodp((uint64_t)len_b, 3), crc_a) ^ crc_b;
}

uint32_t fm_crc32c(uint32_t crc, const void *buf, size_t len) {
    fm_crc32c_init();
    const unsigned char *p = (const unsigned char *)buf;
#ifdef _OPENMP
    int nt = fm_get_num_threads();
    if (len >= FM_PAR_MIN && nt > 1) {
        if (nt > 16) nt = 16;
        size_t per = len / (size_t)nt;
        if (per < ((size_t)512 << 10)) {   /* at least 512 KiB a thread */
            nt = (int)(len >> 19);
            per = len / (size_t)nt;
        }
        uint32_t part[16];
#pragma omp parallel for num_threads(nt) schedule(static)
        for (int t = 0; t < nt; t++) {
            size_t start = (size_t)t * per, n = (t == nt - 1) ? len - start : per;
            part[t] = fm_crc_raw(t == 0 ? ~crc : 0u, p + start, n);
        }
        uint32_t c = part[0];
        for (int t = 1; t < nt; t++) {
            size_t n = (t == nt - 1) ? len - (size_t)t * per : per;
            c = fm_multmodp(fm_x2nmodp((uint64_t)n, 3), c) ^ part[t];
        }
        return ~c;
    }
#endif
    return ~fm_crc_raw(~crc, p, len);
}

uint32_t fm_crc32c_portable(uint32_t crc, const void *buf, size_t len) {
    fm_crc32c_init();
    return ~fm_crc_sw_raw(~crc, (const unsigned char *)buf, len);
}

const char *fm_crc32c_impl(void) {
    fm_crc32c_init();
    return fm_crc_hw ? "sse4.2" : "portable";
}

int fm_all_zero(const void *buf, size_t len) {
    const unsigned char *p = (const unsigned char *)buf;
    uint64_t acc = 0;
    while (len >= 8) {
        uint64_t a;
        memcpy(&a, p, 8);
        acc |= a;
        p += 8;
        len -= 8;
    }
    while (len--) acc |= *p++;
    return acc == 0;
}
