# The model file's tensor-table check (included by _engine.pyx; the rules are in
# docs/FORMAT.md, the constants and the reader in saving.py).  It runs on every
# load over the decoded JSON, so it is compiled; sizes stay Python integers,
# since a damaged file may hold any integer.


def check_tensor_table(table, str section, section_len, str what, dict itemsizes,
                       Py_ssize_t max_ndim, max_elements, align, error):
    """Validate a tensor table (decoded JSON) against its section of ``section_len`` bytes.

    Returns ``[(name, dtype, shape tuple, offset, length, entry dict), ...]`` in file
    order; raises ``error`` (the format's exception) naming the first problem:
    entries must be objects with a unique non-empty ``name``, a ``dtype`` in
    ``itemsizes``, a ``shape`` of at most ``max_ndim`` non-negative integers whose
    product stays within ``max_elements``, ``length`` = elements x item size and an
    ``align``-aligned ``offset`` after the previous tensor's end and inside the
    section; the section ends at the last tensor's end rounded up to ``align``.
    """
    if not isinstance(table, list):
        raise error(f"{what}: the tensor table must be a list")
    cdef list out = []
    cdef set names = set()
    cdef dict t
    cdef Py_ssize_t i
    end = 0
    for i in range(len(<list>table)):
        entry = (<list>table)[i]
        if type(entry) is not dict:
            raise error(f"{what}: tensor #{i} is not an object")
        t = <dict>entry
        name, dt, shape = t.get("name"), t.get("dtype"), t.get("shape")
        off, length = t.get("offset"), t.get("length")
        if type(name) is not str or not name:
            raise error(f"{what}: tensor #{i} has no name")
        if name in names:
            raise error(f"{what}: tensor {name!r} appears twice")
        names.add(name)
        if type(dt) is not str or dt not in itemsizes:
            raise error(f"{what}: tensor {name!r} has unknown dtype {dt!r}")
        if type(shape) is not list or len(<list>shape) > max_ndim:
            raise error(f"{what}: tensor {name!r} has an invalid shape {shape!r}")
        for d in <list>shape:
            if type(d) is not int or d < 0:
                raise error(f"{what}: tensor {name!r} has an invalid shape {shape!r}")
        count = 1
        for d in <list>shape:
            count = count * d
            if count > max_elements:
                raise error(f"{what}: tensor {name!r}: the shape {shape} overflows (byte count too large)")
        nbytes = count * itemsizes[dt]
        if type(length) is not int or length != nbytes:
            raise error(f"{what}: tensor {name!r}: length {length!r} does not match shape {shape} of {dt} "
                        f"({nbytes} bytes)")
        if type(off) is not int or off < 0:
            raise error(f"{what}: tensor {name!r} has an invalid offset {off!r}")
        if off % align:
            raise error(f"{what}: tensor {name!r}: offset {off} is not {align}-byte aligned")
        if off < end:
            raise error(f"{what}: tensor {name!r}: offset {off} overlaps the previous tensor or is out of "
                        f"order (tensors must be sorted by offset)")
        end = off + length
        if end > section_len:
            raise error(f"{what}: tensor {name!r}: bytes [{off}, {end}) lie outside the "
                        f"{section_len}-byte {section} section")
        out.append((name, dt, tuple(<list>shape), off, length, t))
    aligned_end = (end + align - 1) // align * align
    if aligned_end != section_len:
        raise error(f"{what}: the {section} section is {section_len} bytes but its tensors end at {end} "
                    f"(expected {aligned_end}: no trailing bytes)")
    return out


cdef inline uint64_t _le(const unsigned char *p, int n) noexcept:
    cdef uint64_t v = 0
    cdef int i
    for i in range(n - 1, -1, -1):
        v = (v << 8) | p[i]
    return v


def check_preamble(bytes head, buf, size, tuple rules, error):
    """Validate the 64-byte preamble in ``head`` (the file's first bytes; the magic is
    already checked), then the header's checksum and its zero padding, from
    ``head`` when it holds them, else from ``buf`` (the whole file, ``size`` bytes).

    ``rules`` is ``(preamble size, format major version, byte order mark, the
    training flag (the only flag defined), header cap, alignment)`` from saving.py.  Returns ``(flags, header
    length, weights length, training length, weights CRC, training CRC, data
    offset, the buffer holding the header)``; raises ``error`` naming the first
    problem (steps 2 to 4 of the validation in ``docs/FORMAT.md``, up to the JSON)."""
    cdef Py_ssize_t pre_size = rules[0]
    major_version, bom_mark, training_flag, header_cap, align = rules[1:]
    if len(head) < pre_size:
        raise ValueError("internal: the head must hold the preamble")
    cdef const unsigned char *p = head
    cdef uint64_t major = _le(p + 12, 2), minor = _le(p + 14, 2), bom = _le(p + 16, 4)
    cdef uint64_t flags = _le(p + 20, 4), h_len = _le(p + 24, 8), w_len = _le(p + 32, 8)
    cdef uint64_t t_len = _le(p + 40, 8)
    cdef uint32_t h_crc = <uint32_t>_le(p + 48, 4), w_crc = <uint32_t>_le(p + 52, 4)
    cdef uint32_t t_crc = <uint32_t>_le(p + 56, 4), p_crc = <uint32_t>_le(p + 60, 4)
    if fm_crc32c(0, p, 60) != p_crc:
        raise error("preamble checksum mismatch: the first 64 bytes are damaged")
    if major != major_version:
        raise error(f"unsupported format version {major}.{minor}: this fastmlp reads version "
                    f"{major_version}.x files")
    if bom != bom_mark:
        raise error(f"unsupported byte order mark 0x{bom:08x} (files are little-endian, mark 0x{bom_mark:08x})")
    if flags & ~<uint64_t>training_flag:
        raise error(f"unknown flags 0x{flags:08x} in the preamble")
    if not 2 <= h_len <= header_cap:
        raise error(f"header length {h_len} is outside [2, {header_cap}] (the cap is 1 MiB)")
    if w_len % <uint64_t>align or t_len % <uint64_t>align:
        raise error("section lengths must be multiples of 64 bytes")
    if t_len and not flags & <uint64_t>training_flag:
        raise error("a training section is present but the training flag is clear")
    if not t_len and t_crc:
        raise error("a checksum is given for an absent training section")
    cdef uint64_t data_off = (pre_size + h_len + <uint64_t>align - 1) // <uint64_t>align * <uint64_t>align
    expected = data_off + <object>w_len + <object>t_len   # Python integers: no overflow
    if size < expected:
        raise error(f"truncated file: {size} bytes, the preamble announces {expected}")
    if size > expected:
        raise error(f"trailing bytes: the file has {size} bytes, the preamble announces {expected}")
    hbuf = head if <uint64_t>len(head) >= data_off else buf
    cdef Py_buffer view
    cdef const unsigned char *h
    cdef bint crc_ok, zero_ok
    _span(hbuf, &view, 0, <Py_ssize_t>data_off, &h)
    try:
        crc_ok = fm_crc32c(0, h + pre_size, <size_t>(data_off - pre_size)) == h_crc
        zero_ok = fm_all_zero(h + pre_size + h_len, <size_t>(data_off - pre_size - h_len)) != 0
    finally:
        PyBuffer_Release(&view)
    if not crc_ok:
        raise error("header checksum mismatch: the header is damaged")
    if not zero_ok:
        raise error("non-zero padding after the header")
    return flags, h_len, w_len, t_len, w_crc, t_crc, data_off, hbuf
