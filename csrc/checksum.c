/* CRC-32C for the model file format (see checksum.h and docs/FORMAT.md), and
 * the zip archive's CRC-32 (the same folding with another polynomial).
 *
 * Three implementations of one raw register update, fm_crc_fn (no pre/post
 * inversion), all giving identical results; the fastest this CPU runs is
 * chosen at run time (fm_crc32c_set_impl() forces one, for tests):
 *
 *   "avx512"   carry-less-multiply folding of 4 x 512-bit accumulators
 *              (VPCLMULQDQ), for buffers from FM_AVX512_MIN bytes (about
 *              60 GB/s on Zen 4 against 28 GB/s for "sse4.2");
 *   "sse4.2"   the crc32 instruction on three independent streams, to hide
 *              its 3-cycle latency, combined with a carry-less multiply in
 *              software (one per block); "avx512" uses it for short buffers
 *              and tails;
 *   "portable" slicing-by-8 tables (about 1-2 GB/s).
 *
 * The same folding on 128-bit registers (PCLMULQDQ alone) was measured at
 * 15 GB/s on Zen 4, slower than "sse4.2" (one carry-less multiply per two
 * cycles), so it is not offered.
 *
 * CRC-32 (zip, polynomial 0xEDB88320) has no instruction of its own: "avx512"
 * folds it the same way, with its own constants and the tables for the last
 * bytes, and "portable" is the same slicing-by-8.
 *
 * The x86 paths are compiled for their instructions by target attributes on
 * their functions only, so the extension still runs on CPUs without them.
 *
 * Polynomials here are "reflected": in a 32-bit value bit 31 is x^0 and bit 0
 * is x^31 (the CRC register's own order); in a 128-bit lane loaded from
 * memory, bit i (little-endian) is the coefficient of x^(127-i), so the first
 * byte of the message holds the highest powers.
 */
#include "checksum.h"
#include "cpu.h"
#include "gemm.h"   /* fm_get_num_threads */

#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#if (defined(__x86_64__) || defined(_M_X64)) && defined(__GNUC__)
#define FM_CRC_X86 1
#include <immintrin.h>
#endif

enum { FM_FOLD_16, FM_FOLD_32, FM_FOLD_48, FM_FOLD_64, FM_FOLD_256, FM_N_FOLDS };
static const unsigned fm_fold_bytes[FM_N_FOLDS] = {16, 32, 48, 64, 256};

/* What one polynomial needs: its tables and constants, built by fm_crc_model_init. */
typedef struct {
    uint32_t poly;                /* reflected */
    uint32_t table[8][256];       /* slicing-by-8 */
    uint32_t x2n[64];             /* x^(2^k) mod P */
    _Alignas(16) uint64_t fold_k[FM_N_FOLDS][2];   /* see "Folding constants" */
} fm_crc_model_t;

static fm_crc_model_t fm_c = {0x82F63B78u};   /* CRC-32C: Castagnoli 0x1EDC6F41, reflected */
static fm_crc_model_t fm_z = {0xEDB88320u};   /* CRC-32 (zip, zlib): 0x04C11DB7, reflected */
static uint32_t fm_k_long, fm_k_short; /* CRC-32C: x^(8 * block) mod P for the 3-way blocks */
static int fm_crc_ready = 0;

#define FM_LONG 8192
#define FM_SHORT 256
#define FM_PAR_MIN ((size_t)4 << 20) /* split across threads from 4 MiB */

/* a * b mod P (reflected: bit 31 is x^0). */
static uint32_t fm_multmodp_p(uint32_t poly, uint32_t a, uint32_t b) {
    uint32_t m = (uint32_t)1 << 31, p = 0;
    for (;;) {
        if (a & m) {
            p ^= b;
            if ((a & (m - 1)) == 0) break;
        }
        m >>= 1;
        b = (b & 1) ? (b >> 1) ^ poly : b >> 1;
    }
    return p;
}

static uint32_t fm_multmodp(uint32_t a, uint32_t b) { return fm_multmodp_p(fm_c.poly, a, b); }

/* x^(n * 2^k) mod P. */
static uint32_t fm_x2nmodp_m(const fm_crc_model_t *m, uint64_t n, unsigned k) {
    uint32_t p = (uint32_t)1 << 31; /* x^0 */
    while (n) {
        if (n & 1) p = fm_multmodp_p(m->poly, m->x2n[k & 63], p);
        n >>= 1;
        k++;
    }
    return p;
}

static uint32_t fm_x2nmodp(uint64_t n, unsigned k) { return fm_x2nmodp_m(&fm_c, n, k); }

/* ------------------------------------------------------------------------ */
/* Folding constants.
 *
 * A 128-bit accumulator A = A_hi * x^64 + A_lo (A_hi in lane 0, the first 8
 * bytes) that lies D bits before the data it is folded onto contributes
 * A * x^D to the message, and
 *
 *     A * x^D = A_hi * x^(D+64) + A_lo * x^D  ==  A_hi * K_hi + A_lo * K_lo  (mod P)
 *
 * with K_hi = x^(D+64) mod P and K_lo = x^D mod P (degree < 32), a sum of two
 * 64 x 32-bit carry-less products that fits in 128 bits again.  Two details
 * of the reflected order fix the exponents actually stored: a 32-bit value r
 * in the low half of a 64-bit lane stands for r * x^32 there, and the
 * carry-less product of two reflected 64-bit lanes comes out as the reflected
 * 128-bit value of the product times x.  Hence lane 0 of the constant holds
 * x^(D+64-32-1) = x^(D+31) mod P and lane 1 holds x^(D-32-1) = x^(D-33) mod P.
 *
 * The final 128-bit accumulator R needs no Barrett reduction: the crc32
 * instruction over R's 16 bytes, from 0, gives R * x^32 mod P, which is the
 * CRC register after R.  The incoming register value is XORed into the first
 * 4 bytes of the data, which is what a CRC register does with its input. */
/* Buffers shorter than this go to the 3-way crc32 path: one round of the four
 * accumulators (measured: folding is already no slower from there). */
#define FM_AVX512_MIN 256

/* ------------------------------------------------------------------------ */
/* Portable path */

/* Raw register update (no pre/post inversion), portable slicing-by-8. */
static uint32_t fm_crc_sw_raw_m(const fm_crc_model_t *m, uint32_t crc, const unsigned char *p,
                                size_t len) {
    const uint32_t (*t)[256] = m->table;
    while (len && ((uintptr_t)p & 7)) {
        crc = t[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
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
        crc = t[7][lo & 0xff] ^ t[6][(lo >> 8) & 0xff] ^ t[5][(lo >> 16) & 0xff] ^ t[4][lo >> 24] ^
              t[3][hi & 0xff] ^ t[2][(hi >> 8) & 0xff] ^ t[1][(hi >> 16) & 0xff] ^ t[0][hi >> 24];
        p += 8;
        len -= 8;
    }
    while (len--) crc = t[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return crc;
}

static uint32_t fm_crc_sw_raw(uint32_t crc, const unsigned char *p, size_t len) {
    return fm_crc_sw_raw_m(&fm_c, crc, p, len);
}

static uint32_t fm_zip_sw_raw(uint32_t crc, const unsigned char *p, size_t len) {
    return fm_crc_sw_raw_m(&fm_z, crc, p, len);
}

#ifdef FM_CRC_X86
/* ------------------------------------------------------------------------ */
/* SSE4.2 path */

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
static uint32_t fm_crc_sse42_raw(uint32_t crc32, const unsigned char *p, size_t len) {
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

/* ------------------------------------------------------------------------ */
/* Folding paths (see "Folding constants" above) */

#define FM_FOLD_TARGET "sse4.2,pclmul"
#define FM_FOLD512_TARGET "sse4.2,pclmul,avx512f,vpclmulqdq"

__attribute__((target(FM_FOLD_TARGET)))
static inline __m128i fm_fold_k128(const fm_crc_model_t *m, int which) {
    return _mm_load_si128((const __m128i *)m->fold_k[which]);
}

/* x moved forward by the distance of constant k, XORed onto data. */
__attribute__((target(FM_FOLD_TARGET)))
static inline __m128i fm_fold128(__m128i x, __m128i k, __m128i data) {
    return _mm_xor_si128(_mm_xor_si128(_mm_clmulepi64_si128(x, k, 0x00),
                                       _mm_clmulepi64_si128(x, k, 0x11)), data);
}

/* Four consecutive 128-bit accumulators folded into the last one. */
__attribute__((target(FM_FOLD_TARGET)))
static inline __m128i fm_fold4(const fm_crc_model_t *m, __m128i a, __m128i b, __m128i c, __m128i d) {
    d = fm_fold128(a, fm_fold_k128(m, FM_FOLD_48), d);
    d = fm_fold128(b, fm_fold_k128(m, FM_FOLD_32), d);
    return fm_fold128(c, fm_fold_k128(m, FM_FOLD_16), d);
}

/* The CRC register after accumulator r and the len bytes at p that follow it:
 * whole 16-byte blocks are folded in, then r becomes a register value (crc32
 * over its bytes) and the 3-way path takes the last bytes. */
__attribute__((target(FM_FOLD_TARGET)))
static uint32_t fm_fold_finish(__m128i r, const unsigned char *p, size_t len) {
    const __m128i k16 = fm_fold_k128(&fm_c, FM_FOLD_16);
    for (; len >= 16; p += 16, len -= 16)
        r = fm_fold128(r, k16, _mm_loadu_si128((const __m128i *)p));
    uint64_t crc = _mm_crc32_u64(0, (uint64_t)_mm_cvtsi128_si64(r));
    crc = _mm_crc32_u64(crc, (uint64_t)_mm_extract_epi64(r, 1));
    return fm_crc_sse42_raw((uint32_t)crc, p, len);
}

/* The 512-bit fold: four independent 128-bit folds, one per lane. */
__attribute__((target(FM_FOLD512_TARGET)))
static inline __m512i fm_fold512(__m512i x, __m512i k, __m512i data) {
    return _mm512_ternarylogic_epi64(_mm512_clmulepi64_epi128(x, k, 0x00),
                                     _mm512_clmulepi64_epi128(x, k, 0x11), data, 0x96);
}

/* Folds len >= 256 bytes at *pp (the register crc XORed into the first four)
 * down to one 128-bit accumulator; *pp and *plen are left at the last bytes
 * (fewer than 64) that follow it. */
__attribute__((target(FM_FOLD512_TARGET)))
static __m128i fm_fold512_body(const fm_crc_model_t *m, uint32_t crc, const unsigned char **pp,
                               size_t *plen) {
    const unsigned char *p = *pp;
    size_t len = *plen;
    __m512i x0 = _mm512_xor_si512(_mm512_loadu_si512(p),
                                  _mm512_zextsi128_si512(_mm_cvtsi32_si128((int)crc)));
    __m512i x1 = _mm512_loadu_si512(p + 64), x2 = _mm512_loadu_si512(p + 128),
            x3 = _mm512_loadu_si512(p + 192);
    const __m512i k256 = _mm512_broadcast_i32x4(fm_fold_k128(m, FM_FOLD_256));
    for (p += 256, len -= 256; len >= 256; p += 256, len -= 256) {
        x0 = fm_fold512(x0, k256, _mm512_loadu_si512(p));
        x1 = fm_fold512(x1, k256, _mm512_loadu_si512(p + 64));
        x2 = fm_fold512(x2, k256, _mm512_loadu_si512(p + 128));
        x3 = fm_fold512(x3, k256, _mm512_loadu_si512(p + 192));
    }
    const __m512i k64 = _mm512_broadcast_i32x4(fm_fold_k128(m, FM_FOLD_64));
    x1 = fm_fold512(x0, k64, x1);
    x2 = fm_fold512(x1, k64, x2);
    x3 = fm_fold512(x2, k64, x3);
    for (; len >= 64; p += 64, len -= 64)
        x3 = fm_fold512(x3, k64, _mm512_loadu_si512(p));
    *pp = p;
    *plen = len;
    return fm_fold4(m, _mm512_extracti32x4_epi32(x3, 0), _mm512_extracti32x4_epi32(x3, 1),
                    _mm512_extracti32x4_epi32(x3, 2), _mm512_extracti32x4_epi32(x3, 3));
}

__attribute__((target(FM_FOLD512_TARGET)))
static uint32_t fm_crc_avx512_raw(uint32_t crc, const unsigned char *p, size_t len) {
    if (len < FM_AVX512_MIN) return fm_crc_sse42_raw(crc, p, len);
    __m128i r = fm_fold512_body(&fm_c, crc, &p, &len);
    return fm_fold_finish(r, p, len);
}

/* CRC-32 (zip): the same folding; the accumulator becomes a register value
 * through the tables (16 bytes from 0 give R * x^32 mod P), as do the last bytes. */
__attribute__((target(FM_FOLD512_TARGET)))
static uint32_t fm_zip_avx512_raw(uint32_t crc, const unsigned char *p, size_t len) {
    if (len < FM_AVX512_MIN) return fm_zip_sw_raw(crc, p, len);
    __m128i r = fm_fold512_body(&fm_z, crc, &p, &len);
    const __m128i k16 = fm_fold_k128(&fm_z, FM_FOLD_16);
    for (; len >= 16; p += 16, len -= 16)
        r = fm_fold128(r, k16, _mm_loadu_si128((const __m128i *)p));
    unsigned char bytes[16];
    _mm_storeu_si128((__m128i *)bytes, r);
    return fm_zip_sw_raw(fm_zip_sw_raw(0, bytes, 16), p, len);
}
#endif

/* ------------------------------------------------------------------------ */
/* Dispatch */

typedef uint32_t (*fm_crc_fn)(uint32_t crc, const unsigned char *p, size_t len);

typedef struct {
    const char *name;
    fm_crc_fn fn;
    int (*usable)(void);   /* NULL: runs everywhere */
} fm_crc_impl_t;

static const fm_crc_impl_t fm_crc_impls[] = {   /* fastest first */
#ifdef FM_CRC_X86
    {"avx512", fm_crc_avx512_raw, fm_cpu_has_avx512_vpclmul},
    {"sse4.2", fm_crc_sse42_raw, fm_cpu_has_sse42},
#endif
    {"portable", fm_crc_sw_raw, NULL},
};
#define FM_N_CRC_IMPLS ((int)(sizeof(fm_crc_impls) / sizeof(fm_crc_impls[0])))

static const fm_crc_impl_t *fm_crc_impl_sel = NULL;
static fm_crc_fn fm_zip_sel = NULL;   /* CRC-32 (zip): folding where VPCLMULQDQ runs, else the tables */

static const fm_crc_impl_t *fm_crc_detect(void) {
    for (int i = 0; i < FM_N_CRC_IMPLS; i++)
        if (!fm_crc_impls[i].usable || fm_crc_impls[i].usable()) return &fm_crc_impls[i];
    return &fm_crc_impls[FM_N_CRC_IMPLS - 1];
}

static void fm_crc_model_init(fm_crc_model_t *m) {
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ m->poly : c >> 1;
        m->table[0][n] = c;
    }
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = m->table[0][n];
        for (int k = 1; k < 8; k++) {
            c = m->table[0][c & 0xff] ^ (c >> 8);
            m->table[k][n] = c;
        }
    }
    uint32_t p = (uint32_t)1 << 30; /* x^1 */
    m->x2n[0] = p;
    for (int n = 1; n < 64; n++) m->x2n[n] = p = fm_multmodp_p(m->poly, p, p);
    for (int i = 0; i < FM_N_FOLDS; i++) {
        uint64_t bits = 8 * (uint64_t)fm_fold_bytes[i];
        m->fold_k[i][0] = fm_x2nmodp_m(m, bits + 31, 0);
        m->fold_k[i][1] = fm_x2nmodp_m(m, bits - 33, 0);
    }
}

void fm_crc32c_init(void) {
    if (fm_crc_ready) return;
    fm_crc_model_init(&fm_c);
    fm_crc_model_init(&fm_z);
    fm_k_long = fm_x2nmodp(FM_LONG, 3);
    fm_k_short = fm_x2nmodp(FM_SHORT, 3);
    fm_crc_fn zip = fm_zip_sw_raw;
#ifdef FM_CRC_X86
    if (fm_cpu_has_avx512_vpclmul()) zip = fm_zip_avx512_raw;
#endif
    __atomic_store_n(&fm_zip_sel, zip, __ATOMIC_RELEASE);
    __atomic_store_n(&fm_crc_impl_sel, fm_crc_detect(), __ATOMIC_RELEASE);
    fm_crc_ready = 1;
}

const char *fm_crc32c_impl(void) {
    fm_crc32c_init();
    return __atomic_load_n(&fm_crc_impl_sel, __ATOMIC_ACQUIRE)->name;
}

int fm_crc32c_set_impl(const char *name) {
    fm_crc32c_init();
    const fm_crc_impl_t *sel = NULL;
    if (!name) return -1;
    if (strcmp(name, "auto") == 0) sel = fm_crc_detect();
    for (int i = 0; i < FM_N_CRC_IMPLS && !sel; i++)
        if (strcmp(name, fm_crc_impls[i].name) == 0 &&
            (!fm_crc_impls[i].usable || fm_crc_impls[i].usable()))
            sel = &fm_crc_impls[i];
    if (!sel) return -1;
    __atomic_store_n(&fm_crc_impl_sel, sel, __ATOMIC_RELEASE);
    /* CRC-32 (zip) follows: the tables when they are forced, else its fastest */
    fm_crc_fn zip = fm_zip_sw_raw;
#ifdef FM_CRC_X86
    if (sel->fn != fm_crc_sw_raw && fm_cpu_has_avx512_vpclmul()) zip = fm_zip_avx512_raw;
#endif
    __atomic_store_n(&fm_zip_sel, zip, __ATOMIC_RELEASE);
    return 0;
}

uint32_t fm_crc32c_combine(uint32_t crc_a, uint32_t crc_b, size_t len_b) {
    fm_crc32c_init();
    return fm_multmodp(fm_x2nmodp((uint64_t)len_b, 3), crc_a) ^ crc_b;
}

uint32_t fm_crc32_zip_shift(size_t len) {
    fm_crc32c_init();
    return fm_x2nmodp_m(&fm_z, (uint64_t)len, 3);
}

uint32_t fm_crc32_zip_combine(uint32_t crc_a, uint32_t crc_b, uint32_t shift_b) {
    return fm_multmodp_p(fm_z.poly, shift_b, crc_a) ^ crc_b;
}

/* The CRC of buf (inverted in and out) through raw; the tables (1-2 GB/s) are
 * split across threads from FM_PAR_MIN bytes and combined.  The folding and
 * crc32-instruction paths run on one thread: at 30-60 GB/s they are near the
 * memory's speed, and waking a pool costs more than it saves when another
 * process holds the second core (measured: 6 ms instead of 0.15 ms for 8 MiB). */
static uint32_t fm_crc_run(const fm_crc_model_t *m, fm_crc_fn raw, uint32_t crc, const void *buf,
                           size_t len) {
    const unsigned char *p = (const unsigned char *)buf;
#ifdef _OPENMP
    int nt = fm_get_num_threads();
    if (len >= FM_PAR_MIN && nt > 1 && (raw == fm_crc_sw_raw || raw == fm_zip_sw_raw)) {
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
            part[t] = raw(t == 0 ? ~crc : 0u, p + start, n);
        }
        uint32_t c = part[0];
        for (int t = 1; t < nt; t++) {
            size_t n = (t == nt - 1) ? len - (size_t)t * per : per;
            c = fm_multmodp_p(m->poly, fm_x2nmodp_m(m, (uint64_t)n, 3), c) ^ part[t];
        }
        return ~c;
    }
#else
    (void)m;
#endif
    return ~raw(~crc, p, len);
}

uint32_t fm_crc32c(uint32_t crc, const void *buf, size_t len) {
    fm_crc32c_init();
    return fm_crc_run(&fm_c, __atomic_load_n(&fm_crc_impl_sel, __ATOMIC_ACQUIRE)->fn, crc, buf, len);
}

uint32_t fm_crc32_zip(uint32_t crc, const void *buf, size_t len) {
    fm_crc32c_init();
    return fm_crc_run(&fm_z, __atomic_load_n(&fm_zip_sel, __ATOMIC_ACQUIRE), crc, buf, len);
}

const char *fm_crc32_zip_impl(void) {
    fm_crc32c_init();
    return __atomic_load_n(&fm_zip_sel, __ATOMIC_ACQUIRE) == fm_zip_sw_raw ? "portable" : "avx512";
}

uint32_t fm_crc32_zip_portable(uint32_t crc, const void *buf, size_t len) {
    fm_crc32c_init();
    return ~fm_zip_sw_raw(~crc, (const unsigned char *)buf, len);
}

uint32_t fm_crc32c_portable(uint32_t crc, const void *buf, size_t len) {
    fm_crc32c_init();
    return ~fm_crc_sw_raw(~crc, (const unsigned char *)buf, len);
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
