/* CRC-32C (Castagnoli), the checksum of the fastmlp model file (docs/FORMAT.md).
 *
 * The CRC is the common "CRC-32C" variant: reflected polynomial 0x82F63B78,
 * initial value 0xFFFFFFFF, final XOR 0xFFFFFFFF; crc32c("123456789") is
 * 0xE3069283.  fm_crc32c(0, buf, len) gives the CRC of a buffer and calls can
 * be chained: fm_crc32c(fm_crc32c(0, a, na), b, nb) is the CRC of a || b.
 *
 * Three implementations, the fastest this CPU runs chosen at run time:
 * carry-less-multiply folding on 512-bit registers (VPCLMULQDQ, "avx512"),
 * SSE4.2's crc32 instruction over three interleaved streams ("sse4.2"), each
 * compiled for its target inside checksum.c only, and portable slicing-by-8
 * tables ("portable") everywhere else.  All give identical results.  Buffers of several MiB are split across
 * OpenMP threads when the extension was built with OpenMP.
 */
#ifndef FASTMLP_CHECKSUM_H
#define FASTMLP_CHECKSUM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Build the lookup tables and pick the implementation.  Idempotent; call it
 * once before any concurrent use (the Python module does so on import). */
void fm_crc32c_init(void);

/* CRC-32C of buf[0, len), continuing from crc (0 to start). */
uint32_t fm_crc32c(uint32_t crc, const void *buf, size_t len);

/* The portable implementation only (for tests). */
uint32_t fm_crc32c_portable(uint32_t crc, const void *buf, size_t len);

/* CRC of a || b from crc(a), crc(b) and len(b). */
uint32_t fm_crc32c_combine(uint32_t crc_a, uint32_t crc_b, size_t len_b);

/* Name of the implementation in use: "avx512", "sse4.2" or "portable". */
const char *fm_crc32c_impl(void);

/* Force an implementation by name (for tests); returns 0 on success, -1 when the
 * name is unknown or this CPU cannot run it.  "auto" restores detection. */
int fm_crc32c_set_impl(const char *name);

/* CRC-32 as zip, zlib and gzip compute it (reflected polynomial 0xEDB88320,
 * inverted in and out; crc32("123456789") is 0xCBF43926), chained like
 * fm_crc32c: carry-less-multiply folding where VPCLMULQDQ runs, else the
 * slicing-by-8 tables.  The zip reader checks the members it reads with it. */
uint32_t fm_crc32_zip(uint32_t crc, const void *buf, size_t len);

/* The tables only (for tests), and which implementation fm_crc32_zip uses:
 * "avx512" or "portable". */
uint32_t fm_crc32_zip_portable(uint32_t crc, const void *buf, size_t len);
const char *fm_crc32_zip_impl(void);

/* CRC-32 (zip) of a || b from crc(a), crc(b) and fm_crc32_zip_shift(len(b)):
 * pieces checksummed apart (by two threads) chained in order; the shift is
 * computed once for pieces of one length. */
uint32_t fm_crc32_zip_shift(size_t len);
uint32_t fm_crc32_zip_combine(uint32_t crc_a, uint32_t crc_b, uint32_t shift_b);

/* 1 when every byte of buf[0, len) is zero. */
int fm_all_zero(const void *buf, size_t len);

#ifdef __cplusplus
}
#endif
#endif
