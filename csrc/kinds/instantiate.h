/* Instantiates the kind file named by FM_KIND_FILE for float (T = float, SFX
 * _f32) and double (SFX _f64): a kind file starts with
 *
 *     #ifndef FM_KIND_BODY
 *     #define FM_KIND_FILE "this_file.c"
 *     #include "instantiate.h"
 *     ... its check / workspace functions and its fm_kind table ...
 *     #else
 *     ... the template body: static functions named FM_CAT(name, SFX) ...
 *     #endif
 */
#include "kind.h"

#define FM_KIND_BODY
#define T float
#define SFX _f32
#include FM_KIND_FILE
#undef T
#undef SFX
#define T double
#define SFX _f64
#include FM_KIND_FILE
#undef T
#undef SFX
#undef FM_KIND_BODY
#undef FM_KIND_FILE
