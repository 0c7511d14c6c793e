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
