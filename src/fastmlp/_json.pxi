# A strict JSON parser for the model file's header (included by _engine.pyx).
#
# It returns exactly what the loader's ``json.JSONDecoder(parse_constant=...)``
# returns for ``data.decode("utf-8")`` (RFC 8259: no NaN/Infinity, no trailing
# commas, strict control characters, duplicate keys keep their first position
# and last value) and rejects everything that decoder rejects, with a
# ValueError naming the problem and the byte offset.  It scans raw bytes and
# builds objects with the CPython C API.  Containers are kept on an explicit
# stack, so nesting costs no C recursion; it is capped at ``max_depth``.
#
# Short ASCII strings without escapes (keys and values such as "float32") and
# short number tokens come from a fixed-size, module-level cache keyed by their
# bytes, so repeated loads share them and skip building (and hashing) new
# objects: without it the real header takes ~6.5 us instead of ~3.8.  The cache
# relies on the GIL: nothing here releases it or runs Python code.
from libc.string cimport memcmp, memset
from libc.stdint cimport uint32_t, uint64_t
from cpython.mem cimport PyMem_Malloc, PyMem_Free
from cpython.ref cimport PyObject

cdef extern from "Python.h":
    # Raw-pointer versions (renamed so they cannot clash with Cython's own
    # declarations): references are managed by hand in the parser.
    PyObject *_jp_dict_new "PyDict_New"() except NULL
    int _jp_dict_setitem "PyDict_SetItem"(PyObject *d, PyObject *k, PyObject *v) except -1
    PyObject *_jp_list_new "PyList_New"(Py_ssize_t n) except NULL
    void _jp_list_set "PyList_SET_ITEM"(PyObject *l, Py_ssize_t i, PyObject *v)   # steals v
    PyObject *_jp_unicode_new "PyUnicode_New"(Py_ssize_t n, Py_UCS4 maxchar) except NULL
    void *_jp_unicode_data "PyUnicode_DATA"(PyObject *u)
    int _jp_unicode_kind "PyUnicode_KIND"(PyObject *u)
    Py_ssize_t _jp_unicode_len "PyUnicode_GET_LENGTH"(PyObject *u)
    uint32_t _jp_read "PyUnicode_READ"(int kind, const void *data, Py_ssize_t i)
    PyObject *_jp_from_kind "PyUnicode_FromKindAndData"(int kind, const void *buf, Py_ssize_t n) except NULL
    PyObject *_jp_decode_utf8 "PyUnicode_DecodeUTF8"(const char *s, Py_ssize_t n, const char *errors) except NULL
    PyObject *_jp_long_ll "PyLong_FromLongLong"(long long v) except NULL
    PyObject *_jp_long_str "PyLong_FromString"(const char *s, char **pend, int base) except NULL
    PyObject *_jp_float "PyFloat_FromDouble"(double v) except NULL
    double _jp_strtod "PyOS_string_to_double"(const char *s, char **endptr, PyObject *overflow) except? -1.0
    void _jp_incref "Py_INCREF"(PyObject *o)
    void _jp_intern "PyUnicode_InternInPlace"(PyObject **u)
    void _jp_decref "Py_DECREF"(PyObject *o)
    void _jp_xdecref "Py_XDECREF"(PyObject *o)
    bint _jp_is_bytes "PyBytes_CheckExact"(object o)
    char *_jp_bytes_ptr "PyBytes_AS_STRING"(object o)
    Py_ssize_t _jp_bytes_len "PyBytes_GET_SIZE"(object o)
    int _JP_1BYTE "PyUnicode_1BYTE_KIND"
    int _JP_4BYTE "PyUnicode_4BYTE_KIND"
    PyObject *_jp_py_true "Py_True"
    PyObject *_jp_py_false "Py_False"
    PyObject *_jp_py_none "Py_None"


cdef enum:
    _JKEY_SLOTS = 4096      # cache slots (a power of two; 40 bytes each)
    _JKEY_MAX = 32          # longest cached string, in bytes
    _JSTACK = 32            # nesting held on the C stack before the heap is used
    _JITEMS = 64            # pending list items held on the C stack before the heap is used
    _JMAX_INT_DIGITS = 4300  # CPython's default int_max_str_digits
    _JNUM_MAX = 24          # longest cached number token, in bytes

# A number token's canonical words have this fourth word (strings of ASCII bytes
# never set a high bit), so numbers and strings share the cache.
cdef uint64_t _JNUM_TAG = <uint64_t>1 << 63

# Byte classes inside a string: 0 plain ASCII, then the bytes that stop the scan.
cdef enum:
    _J_PLAIN = 0
    _J_QUOTE = 1
    _J_BACKSLASH = 2
    _J_CONTROL = 3
    _J_HIGH = 4

cdef unsigned char _jcls[256]
cdef unsigned char _jhex[256]      # hex digit value + 1, 0 for a non-hex byte
cdef bint _jle                     # little-endian: strings are scanned a word at a time


cdef void _jinit_tables() noexcept:
    global _jle
    cdef int i
    cdef uint32_t one = 1
    _jle = (<unsigned char *>&one)[0] == 1
    for i in range(256):
        _jcls[i] = _J_CONTROL if i < 0x20 else (_J_HIGH if i >= 0x80 else _J_PLAIN)
        _jhex[i] = 0
    _jcls[34] = _J_QUOTE
    _jcls[92] = _J_BACKSLASH
    for i in range(10):
        _jhex[48 + i] = <unsigned char>(i + 1)
    for i in range(6):
        _jhex[65 + i] = <unsigned char>(11 + i)
        _jhex[97 + i] = <unsigned char>(11 + i)


_jinit_tables()


cdef inline bint _jws(unsigned char c) noexcept:
    return c == 32 or c == 10 or c == 13 or c == 9


cdef inline bint _jdigit(unsigned char c) noexcept:
    return <unsigned char>(c - 48) < 10


cdef inline Py_ssize_t _jskip(const unsigned char *s, Py_ssize_t p, Py_ssize_t end) noexcept:
    while p < end and s[p] <= 32 and _jws(s[p]):   # one comparison for compact JSON
        p += 1
    return p


# ---- the string cache ------------------------------------------------------
# A string of 1..32 plain ASCII bytes is identified by its bytes zero-padded to
# 32, read as four 8-byte words in memory order (its "canonical words"; as it
# holds no NUL byte, they also give its length).  The cache is a table of two-way sets,
# slots i and i + 1, the most recently added first; it holds one reference to
# each string.  An empty slot has s == NULL and zero words, which no string has.

cdef struct _JKey:
    PyObject *s
    uint64_t w[4]

cdef _JKey _jkeys[_JKEY_SLOTS]


cdef inline uint64_t _jload8(const unsigned char *p) noexcept:
    cdef uint64_t v
    memcpy(&v, p, 8)
    return v


cdef inline bint _jkey_is(const _JKey *k, const uint64_t *w) noexcept:
    return ((k.w[0] ^ w[0]) | (k.w[1] ^ w[1]) | (k.w[2] ^ w[2]) | (k.w[3] ^ w[3])) == 0


cdef inline _JKey *_jcache_set(const uint64_t *w) noexcept:
    """The two-way set of the cache where the canonical words w belong."""
    cdef uint64_t h = ((w[0] * <uint64_t>0x9E3779B97F4A7C15ULL) ^ w[1] ^ (w[2] << 1) ^ (w[3] << 2)
                       ) * <uint64_t>0xFF51AFD7ED558CCDULL
    return &_jkeys[(h >> 50) & (_JKEY_SLOTS - 2)]


cdef inline PyObject *_jcache_get(_JKey *k, const uint64_t *w) noexcept:
    """A new reference to the object cached for w in the set k, or NULL."""
    cdef PyObject *o
    if _jkey_is(k, w):
        o = k.s
    elif _jkey_is(k + 1, w):
        o = k[1].s
    else:
        return NULL
    _jp_incref(o)
    return o


cdef void _jcache_put(_JKey *k, const uint64_t *w, PyObject *o) noexcept:
    """Cache o (a str, int or float) for w, first in the set k; the second is evicted."""
    cdef PyObject *old = k[1].s
    k[1] = k[0]
    k.s = o
    memcpy(k.w, w, sizeof(k.w))
    _jp_incref(o)
    _jp_xdecref(old)   # a str, int or float: its deallocation runs no Python code


cdef inline PyObject *_jcached(const unsigned char *p, Py_ssize_t n, const uint64_t *w) except NULL:
    """The str of the n (1..32) plain ASCII bytes at p, whose canonical words are w."""
    cdef _JKey *k = _jcache_set(w)
    cdef PyObject *u = _jcache_get(k, w)
    if u == NULL:
        u = _jp_unicode_new(n, 127)
        memcpy(_jp_unicode_data(u), p, <size_t>n)
        # Interned once, as it enters the cache: keys passed on as keyword arguments
        # (Dense(**config)) then match the parameter names by identity, not by comparison.
        _jp_intern(&u)
        _jcache_put(k, w, u)
    return u


cdef inline uint64_t _jlow_bytes(Py_ssize_t k) noexcept:
    """A mask of the low k bytes of a word (k clamped to 0..8)."""
    if k <= 0:
        return 0
    if k >= 8:
        return <uint64_t>0xFFFFFFFFFFFFFFFFULL
    return (<uint64_t>1 << (8 * k)) - 1


cdef inline void _jwords(const unsigned char *p, Py_ssize_t n, Py_ssize_t avail, uint64_t *w) noexcept:
    """The canonical words of the n (0..32) bytes at p, with avail >= n bytes readable there."""
    if _jle and avail >= 32:
        w[0] = _jload8(p) & _jlow_bytes(n)
        w[1] = _jload8(p + 8) & _jlow_bytes(n - 8)
        w[2] = _jload8(p + 16) & _jlow_bytes(n - 16)
        w[3] = _jload8(p + 24) & _jlow_bytes(n - 24)
    else:
        memset(w, 0, 4 * sizeof(uint64_t))
        memcpy(w, p, <size_t>n)


cdef PyObject *_jascii(const unsigned char *p, Py_ssize_t n, Py_ssize_t avail) except NULL:
    """The str of n plain ASCII bytes (through the cache when 1 <= n <= 32)."""
    cdef uint64_t w[4]
    cdef PyObject *u
    if n == 0 or n > _JKEY_MAX:
        u = _jp_unicode_new(n, 127)
        memcpy(_jp_unicode_data(u), p, <size_t>n)
        return u
    _jwords(p, n, avail, w)
    return _jcached(p, n, w)


def _json_key_cache_clear():
    """Empty the cache of strings and numbers (for tests and leak checks)."""
    cdef Py_ssize_t i
    cdef PyObject *old
    for i in range(_JKEY_SLOTS):
        old = _jkeys[i].s
        _jkeys[i].s = NULL
        memset(_jkeys[i].w, 0, sizeof(_jkeys[i].w))
        _jp_xdecref(old)


# ---- strings -----------------------------------------------------------------

cdef inline uint64_t _jspecial(uint64_t w) noexcept:
    """The high bit of each byte of w that ends a run of plain ASCII in a string:
    '"', '\\\\', below 0x20 or 0x80 and above.  Bits above the lowest one set may be
    spurious (borrows); the lowest one is exact, and a word with no such byte
    gives 0."""
    cdef uint64_t ones = 0x0101010101010101ULL
    cdef uint64_t qt = w ^ (ones * 0x22)
    cdef uint64_t bs = w ^ (ones * 0x5C)
    return (((qt - ones) & ~qt) | ((bs - ones) & ~bs) | ((w - ones * 0x20) & ~w) | w) & (ones * 0x80)


cdef PyObject *_jdecode_utf8(const unsigned char *s, Py_ssize_t q, Py_ssize_t n) except NULL:
    """Strict UTF-8 decoding of s[q:q+n]; invalid bytes give a ValueError with their offset."""
    try:
        return _jp_decode_utf8(<const char *>(s + q), n, "strict")
    except UnicodeDecodeError as e:
        raise ValueError(f"invalid UTF-8 in a string at byte {q + e.start}") from None


cdef inline uint32_t _jhex4(int kind, const void *data, Py_ssize_t i) noexcept:
    """The value of four hex digits already checked by the byte scan."""
    return (((<uint32_t>_jhex[_jp_read(kind, data, i)] - 1) << 12)
            | ((<uint32_t>_jhex[_jp_read(kind, data, i + 1)] - 1) << 8)
            | ((<uint32_t>_jhex[_jp_read(kind, data, i + 2)] - 1) << 4)
            | (<uint32_t>_jhex[_jp_read(kind, data, i + 3)] - 1))


cdef PyObject *_jescaped(const unsigned char *s, Py_ssize_t q, Py_ssize_t n, bint high) except NULL:
    """The str of a string body s[q:q+n] holding escapes (their syntax already checked).

    The body is first turned into code points (strict UTF-8 when it has non-ASCII
    bytes); escapes are then replaced as json does: a \\uXXXX high surrogate
    directly followed by a \\uXXXX low surrogate makes one code point, any other
    surrogate stays a lone code point."""
    cdef PyObject *raw = NULL
    cdef uint32_t *out = NULL   # UCS-4 code points
    cdef int kind = _JP_1BYTE
    cdef const void *data = s + q
    cdef Py_ssize_t m = n, i = 0, k = 0
    cdef uint32_t c, c2
    try:
        if high:
            raw = _jdecode_utf8(s, q, n)
            kind = _jp_unicode_kind(raw)
            data = _jp_unicode_data(raw)
            m = _jp_unicode_len(raw)
        out = <uint32_t *>PyMem_Malloc(<size_t>m * sizeof(uint32_t) + 1)
        if out == NULL:
            raise MemoryError()
        while i < m:
            c = _jp_read(kind, data, i)
            if c != 92:
                out[k] = c
                k += 1
                i += 1
                continue
            c = _jp_read(kind, data, i + 1)
            if c == 117:   # u
                c = _jhex4(kind, data, i + 2)
                i += 6
                if (0xD800 <= c <= 0xDBFF and i + 5 < m and _jp_read(kind, data, i) == 92
                        and _jp_read(kind, data, i + 1) == 117):
                    c2 = _jhex4(kind, data, i + 2)
                    if 0xDC00 <= c2 <= 0xDFFF:
                        c = 0x10000 + ((c - 0xD800) << 10) + (c2 - 0xDC00)
                        i += 6
            else:
                i += 2
                if c == 98:
                    c = 8
                elif c == 102:
                    c = 12
                elif c == 110:
                    c = 10
                elif c == 114:
                    c = 13
                elif c == 116:
                    c = 9
                # '"', '\\' and '/' stand for themselves
            out[k] = c
            k += 1
        return _jp_from_kind(_JP_4BYTE, out, k)
    finally:
        PyMem_Free(out)
        _jp_xdecref(raw)


cdef inline Py_ssize_t _jfirst(uint64_t m) noexcept:
    """The index of the lowest byte of m (m != 0) whose high bit is set."""
    return <Py_ssize_t>((((m & (~m + 1)) >> 7) * <uint64_t>0x0001020304050607ULL) >> 56)


cdef inline PyObject *_jstring(const unsigned char *s, Py_ssize_t *ppos, Py_ssize_t end) except NULL:
    """The string whose opening quote is at ppos[0]; ppos[0] moves past its closing quote.

    Fast path: the 32 bytes after the quote are scanned a word at a time, and
    the words read are the string's canonical words; when the first byte that
    is not plain ASCII is the closing quote, the string comes from the cache."""
    cdef Py_ssize_t q = ppos[0] + 1, n, i = 0
    cdef uint64_t w[4]
    cdef uint64_t x, m, low
    if _jle and q + 32 <= end:
        w[0] = w[1] = w[2] = w[3] = 0
        while True:
            x = _jload8(s + q + 8 * i)
            m = _jspecial(x)
            if m != 0:
                break
            w[i] = x
            i += 1
            if i == 4:   # 32 plain bytes: longer than the cache holds
                return _jstring_slow(s, q, q + 32, ppos, end)
        low = (m & (~m + 1)) >> 7           # 1 << (8 * the index of the special byte)
        n = 8 * i + <Py_ssize_t>((low * <uint64_t>0x0001020304050607ULL) >> 56)
        if s[q + n] != 34 or n == 0:
            return _jstring_slow(s, q, q + n, ppos, end)
        w[i] = x & (low - 1)                # the bytes before the quote
        ppos[0] = q + n + 1
        return _jcached(s + q, n, w)
    return _jstring_slow(s, q, q, ppos, end)


cdef PyObject *_jstring_slow(const unsigned char *s, Py_ssize_t q, Py_ssize_t p, Py_ssize_t *ppos,
                             Py_ssize_t end) except NULL:
    """The string whose body starts at q, s[q:p] being plain ASCII; ppos[0] moves
    past its closing quote."""
    cdef unsigned char c, t
    cdef bint esc = False, high = False
    cdef uint64_t m, w
    while True:
        if _jle:   # skip 8 bytes at a time while they need no attention
            while p + 8 <= end:
                w = _jload8(s + p)
                m = _jspecial(w)
                if high:   # non-ASCII bytes need no attention any more
                    m &= ~w
                if m != 0:
                    p += _jfirst(m)
                    break
                p += 8
        if p >= end:
            raise ValueError(f"unterminated string starting at byte {q - 1}")
        c = s[p]
        t = _jcls[c]
        if t == _J_PLAIN:
            p += 1
        elif t == _J_QUOTE:
            break
        elif t == _J_BACKSLASH:
            if p + 1 >= end:
                raise ValueError(f"unterminated string starting at byte {q - 1}")
            c = s[p + 1]
            if c == 117:   # u
                if (p + 5 >= end or not _jhex[s[p + 2]] or not _jhex[s[p + 3]]
                        or not _jhex[s[p + 4]] or not _jhex[s[p + 5]]):
                    raise ValueError(f"invalid \\uXXXX escape at byte {p}")
                p += 6
            elif c == 34 or c == 92 or c == 47 or c == 98 or c == 102 or c == 110 or c == 114 or c == 116:
                p += 2
            else:
                raise ValueError(f"invalid escape at byte {p}")
            esc = True
        elif t == _J_CONTROL:
            raise ValueError(f"control character 0x{c:02x} in a string at byte {p}")
        else:
            high = True
            p += 1
    ppos[0] = p + 1
    if esc:
        return _jescaped(s, q, p - q, high)
    if high:
        return _jdecode_utf8(s, q, p - q)
    return _jascii(s + q, p - q, end - q)


cdef PyObject *_jbig(const unsigned char *p, Py_ssize_t n, bint isfloat) except NULL:
    """int or float from the n bytes of a number token at p (grammar already checked)."""
    cdef char small[72]
    cdef char *t = small
    cdef char *e = NULL
    cdef double d
    if n >= 72:
        t = <char *>PyMem_Malloc(<size_t>n + 1)
        if t == NULL:
            raise MemoryError()
    try:
        memcpy(t, p, <size_t>n)
        t[n] = 0
        if not isfloat:
            return _jp_long_str(t, NULL, 10)
        d = _jp_strtod(t, &e, NULL)    # overflow gives +-inf, as float() does
        if e != t + n:
            raise ValueError("internal: number token not fully converted")
        return _jp_float(d)
    finally:
        if t != small:
            PyMem_Free(t)


cdef PyObject *_jnumber(const unsigned char *s, Py_ssize_t *ppos, Py_ssize_t end) except NULL:
    """The number at ppos[0] (a '-' or a digit); ppos[0] moves past it."""
    cdef Py_ssize_t q = ppos[0], p = q, ds
    cdef bint neg = False, isfloat = False
    cdef unsigned long long v = 0
    if s[p] == 45:   # -
        neg = True
        p += 1
        if p >= end or not _jdigit(s[p]):
            if end - p >= 8 and memcmp(s + p, b"Infinity", 8) == 0:
                raise ValueError(f"JSON constant -Infinity is not allowed (byte {q})")
            raise ValueError(f"expecting a digit at byte {p}")
    ds = p
    if s[p] == 48:   # a leading 0 stands alone
        p += 1
    else:
        while p < end and _jdigit(s[p]):
            v = v * 10 + (s[p] - 48)
            p += 1
    cdef Py_ssize_t nd = p - ds
    if p < end and s[p] == 46:   # .
        p += 1
        if p >= end or not _jdigit(s[p]):
            raise ValueError(f"expecting a digit after '.' at byte {p}")
        while p < end and _jdigit(s[p]):
            p += 1
        isfloat = True
    if p < end and (s[p] | 0x20) == 101:   # e or E
        p += 1
        if p < end and (s[p] == 43 or s[p] == 45):
            p += 1
        if p >= end or not _jdigit(s[p]):
            raise ValueError(f"expecting a digit in the exponent at byte {p}")
        while p < end and _jdigit(s[p]):
            p += 1
        isfloat = True
    ppos[0] = p
    if not isfloat and nd <= 18:
        if v <= 256:   # small magnitudes: cheap to make (CPython keeps -5..256)
            return _jp_long_ll(-<long long>v if neg else <long long>v)
    elif not isfloat and nd > _JMAX_INT_DIGITS:
        raise ValueError(f"integer of {nd} digits at byte {q} (more than {_JMAX_INT_DIGITS})")
    if p - q > _JNUM_MAX:
        return _jbig(s + q, p - q, isfloat)
    # Numbers are immutable: one object per token text is shared by every parse.
    cdef uint64_t w[4]
    _jwords(s + q, p - q, end - q, w)
    w[3] = _JNUM_TAG
    cdef _JKey *k = _jcache_set(w)
    cdef PyObject *o = _jcache_get(k, w)
    if o == NULL:
        if not isfloat and nd <= 18:
            o = _jp_long_ll(-<long long>v if neg else <long long>v)
        else:
            o = _jbig(s + q, p - q, isfloat)
        _jcache_put(k, w, o)
    return o


# Held in variables: gcc warns (wrongly) about Py_INCREF on the address of Py_True.
cdef PyObject *_jtrue = _jp_py_true
cdef PyObject *_jfalse = _jp_py_false
cdef PyObject *_jnone = _jp_py_none


cdef inline PyObject *_jconst(PyObject *o) noexcept:
    _jp_incref(o)
    return o


cdef PyObject *_jscalar(const unsigned char *s, Py_ssize_t *ppos, Py_ssize_t end) except NULL:
    """A string, number, true, false or null at ppos[0] (not whitespace, not the end)."""
    cdef Py_ssize_t p = ppos[0]
    cdef unsigned char c = s[p]
    if c == 34:
        return _jstring(s, ppos, end)
    if c == 45 or _jdigit(c):
        return _jnumber(s, ppos, end)
    if c == 116 and end - p >= 4 and memcmp(s + p, b"true", 4) == 0:
        ppos[0] = p + 4
        return _jconst(_jtrue)
    if c == 102 and end - p >= 5 and memcmp(s + p, b"false", 5) == 0:
        ppos[0] = p + 5
        return _jconst(_jfalse)
    if c == 110 and end - p >= 4 and memcmp(s + p, b"null", 4) == 0:
        ppos[0] = p + 4
        return _jconst(_jnone)
    if c == 78 and end - p >= 3 and memcmp(s + p, b"NaN", 3) == 0:
        raise ValueError(f"JSON constant NaN is not allowed (byte {p})")
    if c == 73 and end - p >= 8 and memcmp(s + p, b"Infinity", 8) == 0:
        raise ValueError(f"JSON constant Infinity is not allowed (byte {p})")
    if c == 0xEF and p + 2 < end and s[p + 1] == 0xBB and s[p + 2] == 0xBF:
        raise ValueError(f"unexpected UTF-8 byte order mark at byte {p}")
    raise ValueError(f"expecting a value at byte {p}")


cdef inline PyObject *_jkey(const unsigned char *s, Py_ssize_t *ppos, Py_ssize_t end) except NULL:
    """A member name and its ':' at ppos[0] (whitespace already skipped)."""
    cdef Py_ssize_t p = ppos[0]
    if p >= end or s[p] != 34:
        raise ValueError(f"expecting '\"' (a property name) at byte {p}")
    cdef PyObject *k = _jstring(s, ppos, end)
    p = _jskip(s, ppos[0], end)
    if p >= end or s[p] != 58:
        _jp_decref(k)
        raise ValueError(f"expecting ':' at byte {p}")
    ppos[0] = p + 1
    return k


cdef struct _JFrame:
    PyObject *obj       # the dict being filled, or NULL for a list
    PyObject *key       # the member name whose value is being parsed (dicts)
    Py_ssize_t start    # where the list's items begin on the value stack (lists)


cdef int _jgrow(void **arr, Py_ssize_t *cap, size_t item, void *small) except -1:
    """Double a stack that starts on the C stack (small) and moves to the heap."""
    cdef void *grown = PyMem_Malloc(<size_t>(2 * cap[0]) * item)
    if grown == NULL:
        raise MemoryError()
    memcpy(grown, arr[0], <size_t>cap[0] * item)
    if arr[0] != small:
        PyMem_Free(arr[0])
    arr[0] = grown
    cap[0] *= 2
    return 0


cdef object _jparse(const unsigned char *s, Py_ssize_t pos, Py_ssize_t end, Py_ssize_t max_depth):
    """The value of the JSON text s[pos:end]; offsets in messages count from s."""
    # The open containers, innermost last, and a stack of the items of the open
    # lists (a list is made at its ']' with its exact size).  All references
    # held here are owned.
    cdef _JFrame small_frames[_JSTACK]
    cdef PyObject *small_items[_JITEMS]
    cdef _JFrame *frames = small_frames
    cdef PyObject **items = small_items
    cdef Py_ssize_t frames_cap = _JSTACK, items_cap = _JITEMS, depth = 0, n_items = 0, i, n
    cdef _JFrame *f
    cdef PyObject *value = NULL
    cdef unsigned char c
    cdef bint want_key = False
    cdef object result
    if pos >= end:
        raise ValueError(f"empty input at byte {pos}")
    try:
        while True:
            if want_key:   # a member of the innermost object starts here
                pos = _jskip(s, pos, end)
                frames[depth - 1].key = _jkey(s, &pos, end)
                want_key = False
            # A value starts here.
            pos = _jskip(s, pos, end)
            if pos >= end:
                raise ValueError(f"expecting a value at byte {pos}")
            c = s[pos]
            if c == 123 or c == 91:   # { or [
                if depth >= max_depth:
                    raise ValueError(f"nesting deeper than {max_depth} at byte {pos}")
                pos = _jskip(s, pos + 1, end)
                if c == 91:
                    if pos < end and s[pos] == 93:   # []
                        pos += 1
                        value = _jp_list_new(0)
                    else:
                        if depth == frames_cap:
                            _jgrow(<void **>&frames, &frames_cap, sizeof(_JFrame), small_frames)
                        f = &frames[depth]
                        f.obj = NULL
                        f.key = NULL
                        f.start = n_items
                        depth += 1
                        continue
                else:
                    if pos < end and s[pos] == 125:   # {}
                        pos += 1
                        value = _jp_dict_new()
                    else:
                        if depth == frames_cap:
                            _jgrow(<void **>&frames, &frames_cap, sizeof(_JFrame), small_frames)
                        f = &frames[depth]
                        f.key = NULL
                        f.obj = _jp_dict_new()
                        depth += 1
                        want_key = True
                        continue
            else:
                value = _jscalar(s, &pos, end)
            # A value is complete: store it in the innermost container, closing
            # containers for as long as their closing bracket follows.
            while True:
                if depth == 0:
                    pos = _jskip(s, pos, end)
                    if pos != end:
                        raise ValueError(f"extra data at byte {pos}")
                    result = <object>value
                    _jp_decref(value)
                    value = NULL
                    return result
                f = &frames[depth - 1]
                pos = _jskip(s, pos, end)
                if f.obj == NULL:   # a list
                    if n_items == items_cap:
                        _jgrow(<void **>&items, &items_cap, sizeof(PyObject *), small_items)
                    items[n_items] = value
                    n_items += 1
                    value = NULL
                    if pos < end and s[pos] == 44:
                        pos += 1
                        break
                    if pos < end and s[pos] == 93:
                        pos += 1
                        n = n_items - f.start
                        value = _jp_list_new(n)
                        for i in range(n):   # the list takes over the references
                            _jp_list_set(value, i, items[f.start + i])
                        n_items = f.start
                        depth -= 1
                        continue
                    raise ValueError(f"expecting ',' or ']' at byte {pos}")
                _jp_dict_setitem(f.obj, f.key, value)
                _jp_decref(value)
                value = NULL
                _jp_decref(f.key)
                f.key = NULL
                if pos < end and s[pos] == 44:
                    pos += 1
                    want_key = True
                    break
                if pos < end and s[pos] == 125:
                    pos += 1
                    value = f.obj
                    f.obj = NULL
                    depth -= 1
                    continue
                raise ValueError(f"expecting ',' or '}}' at byte {pos}")
    finally:
        _jp_xdecref(value)
        for i in range(depth):
            _jp_xdecref(frames[i].obj)
            _jp_xdecref(frames[i].key)
        for i in range(n_items):
            _jp_decref(items[i])
        if frames != small_frames:
            PyMem_Free(frames)
        if items != small_items:
            PyMem_Free(items)


def parse_json(data, Py_ssize_t start=0, Py_ssize_t length=-1, int max_depth=128):
    """The Python value of the JSON text in ``data[start:start + length]``.

    ``data`` is bytes or any object with the buffer protocol (mmap, bytearray, a
    contiguous uint8 array); ``length`` -1 means to the end.  The result equals
    ``json.JSONDecoder(parse_constant=<reject>).decode(text.decode("utf-8"))``;
    malformed text (including NaN/Infinity, invalid UTF-8, a BOM, trailing data)
    raises ValueError naming the problem and its byte offset in ``data``.
    Containers nested deeper than ``max_depth`` raise ValueError, and integers
    are limited to 4300 digits (CPython's default int_max_str_digits).

    Short ASCII strings and short number tokens come from a module-level cache,
    so equal values in repeated parses are the same (immutable) objects."""
    cdef Py_buffer view
    cdef const unsigned char *p
    cdef Py_ssize_t size
    if max_depth < 0:
        raise ValueError(f"max_depth must be >= 0, got {max_depth}")
    if _jp_is_bytes(data):
        p = <const unsigned char *>_jp_bytes_ptr(data)
        size = _jp_bytes_len(data)
        if start < 0 or start > size or length < -1 or (length >= 0 and length > size - start):
            raise ValueError(f"byte range start={start}, length={length} outside a buffer of {size} bytes")
        return _jparse(p, start, size if length < 0 else start + length, max_depth)
    PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
    try:
        size = view.len
        if start < 0 or start > size or length < -1 or (length >= 0 and length > size - start):
            raise ValueError(f"byte range start={start}, length={length} outside a buffer of {size} bytes")
        return _jparse(<const unsigned char *>view.buf, start, size if length < 0 else start + length,
                       max_depth)
    finally:
        PyBuffer_Release(&view)
