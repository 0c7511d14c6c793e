"""Where the datasets of a small HDF5 file lie, read straight from its bytes.

Opening a dataset through h5py costs about 60 microseconds (the HDF5 library's object and metadata
caches, h5py's locks and identifiers), so a Keras weights file of twenty variables took longer to
look up than to read.  The files h5py writes by default -- Keras's ``model.weights.h5`` among them --
use the oldest layout of the format, which is short to walk:

    superblock version 0 or 1 -> the root group's symbol-table entry
    a group: a version-1 B-tree of symbol-table nodes ("TREE" / "SNOD") naming its members in a
             local heap ("HEAP")
    an object: a version-1 header whose messages give a dataset's dataspace (shape), datatype
               and layout (contiguous: the address of its bytes)

``H5Index`` follows exactly that and nothing else.  Anything outside it -- newer superblocks or
headers, link messages, compact or chunked storage, filters, unusual number formats, an address
out of the buffer, more nodes than the buffer could hold -- raises ``Unsupported``, and the caller
reads the file through h5py instead, which also judges whether it is damaged.  Every read is bounds
checked against the buffer, and the work is bounded by its size.

Reference: the HDF5 File Format Specification, version 3.0 (sections II.A superblock, III.A.1
version-1 B-trees, III.B group symbol table nodes, III.D local heaps, IV.A.1.a version-1 object
headers, IV.A.2.b dataspace, IV.A.2.d datatype, IV.A.2.i data layout, IV.A.2.q continuation,
IV.A.2.r symbol table message).
"""
import math
import struct

import numpy as np

__all__ = ["H5Index", "Unsupported", "Damaged"]

_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_UNDEFINED = 0xFFFFFFFFFFFFFFFF

_MSG_DATASPACE, _MSG_DATATYPE, _MSG_LAYOUT, _MSG_FILTERS = 0x0001, 0x0003, 0x0008, 0x000B
_MSG_CONTINUATION, _MSG_SYMBOL_TABLE, _MSG_LINK, _MSG_LINK_INFO = 0x0010, 0x0011, 0x0006, 0x0002
_MSG_EXTERNAL, _MSG_ATTRIBUTE, _MSG_ATTRIBUTE_INFO = 0x0007, 0x000C, 0x0015

# IEEE little-endian floats as HDF5 describes them: size -> (exponent location, exponent size,
# mantissa location, mantissa size, bias); the sign bit is the highest.
_MAX_NAME = 4096   # bytes of one link name (Keras's are a few dozen)

_IEEE = {2: (10, 5, 0, 10, 15), 4: (23, 8, 0, 23, 127), 8: (52, 11, 0, 52, 1023)}

_CHILD = struct.Struct("<Q8x")       # a group B-tree's child address, then the key after it
_SYMBOL = struct.Struct("<QQ24x")    # a symbol-table entry: name offset, object header address
_MESSAGE = struct.Struct("<HH4x")    # a version-1 header message: type, size of its data


class Unsupported(Exception):
    """The file uses a part of HDF5 this reader does not follow: read it through h5py."""


class Damaged(Exception):
    """An attribute the index cannot read in a file of the layout it follows.  Keras and
    TensorFlow write only strings there, and HDF5 itself has been seen to crash the process on
    such a damaged attribute, so the file is not handed to h5py: the loader reports it damaged."""


class H5Index:
    """The groups and contiguous datasets of an HDF5 file held in ``buf`` (bytes, a memoryview)."""

    def __init__(self, buf, fetch=None):
        """``buf``: any bytes-like object (bytes, a uint8 array); nothing is copied but the
        local heaps' names.  ``fetch(offset, n)``, when given, is called before the index
        reads bytes ``offset:offset + n`` of ``buf`` (a file read into it as it is walked:
        the index reads only the file's structure, never a dataset's values).  A file read in
        order may have ``fetch`` return how many bytes from the start are in: the index asks
        again only past them (it reads a few bytes hundreds of times)."""
        self.buf = memoryview(buf).cast("B") if not isinstance(buf, bytes) else buf
        self._heaps, self._collections = {}, {}
        self.size = len(self.buf)
        self._fetch = fetch
        self._have = self.size if fetch is None else 0   # bytes buf[:_have] are known to be in
        self._budget = 64 + self.size // 16   # nodes and messages visited, at most
        self._groups = {}
        if self.size >= 96 and fetch is not None:
            self._have = fetch(0, 96) or 0
        if self.size < 96 or bytes(self.buf[:8]) != _SIGNATURE:
            raise Unsupported("no superblock at offset 0")
        version, = struct.unpack_from("<B", buf, 8)
        if version not in (0, 1) or buf[13] != 8 or buf[14] != 8:
            raise Unsupported("superblock version or address size")
        base = 24 + (4 if version == 1 else 0)
        self.base, = struct.unpack_from("<Q", buf, base)
        if self.base != 0:
            raise Unsupported("a user block")
        self.root = self._entry(base + 32)

    # ------------------------------------------------------------------ reading
    def _spend(self, n=1):
        self._budget -= n
        if self._budget < 0:
            raise Unsupported("more structure than the file's size allows")

    def _at(self, offset, n):
        """``offset``, once bytes ``offset:offset + n`` are known to lie in the file (and have
        been fetched)."""
        end = offset + n
        if offset < 0 or n < 0 or end > self.size:
            raise Unsupported("an address outside the file")
        if end > self._have:
            self._have = self._fetch(offset, n) or 0
        return offset

    def _inside(self, offset, n):
        if offset < 0 or n < 0 or offset + n > self.size:
            raise Unsupported("an address outside the file")

    def _q(self, offset):
        return struct.unpack_from("<Q", self.buf, self._at(offset, 8))[0]

    def _entry(self, offset):
        """A symbol-table entry: (name offset, object header address, (B-tree, heap) or None)."""
        name, header, cache = struct.unpack_from("<QQI", self.buf, self._at(offset, 40))
        scratch = struct.unpack_from("<QQ", self.buf, offset + 24) if cache == 1 else None
        return name, header, scratch

    def _heap(self, address):
        """The bytes of a local heap's data segment (copied once per heap, paid for from the
        budget by their size)."""
        found = self._heaps.get(address)
        if found is None:
            self._at(address, 32)
            if bytes(self.buf[address:address + 4]) != b"HEAP" or self.buf[address + 4] != 0:
                raise Unsupported("not a version-0 local heap")
            size, _, data = struct.unpack_from("<QQQ", self.buf, address + 8)
            self._at(data, size)
            self._spend(1 + size // 64)
            found = self._heaps[address] = bytes(self.buf[data:data + size])
        return found

    def _name(self, heap, offset):
        """The name at ``offset`` of a heap: paid for by its length, at most ``_MAX_NAME`` bytes."""
        if offset >= len(heap):
            raise Unsupported("a name outside its heap")
        end = heap.find(b"\0", offset, offset + _MAX_NAME + 1)
        if end < 0:
            raise Unsupported("an unterminated or overlong name")
        self._spend((end - offset) // 16)
        try:
            return heap[offset:end].decode("utf8", "strict")
        except UnicodeDecodeError:
            raise Unsupported("a name that is not UTF-8") from None

    def _members(self, btree, heap_address):
        """{name: object header address} of a group from its B-tree and local heap."""
        heap = self._heap(heap_address)
        out = {}
        stack = [btree]
        while stack:
            node = stack.pop()
            self._spend()
            self._at(node, 24)
            sig = bytes(self.buf[node:node + 4])
            if sig == b"TREE":
                kind, level, used = struct.unpack_from("<BBH", self.buf, node + 4)
                if kind != 0:
                    raise Unsupported("not a group B-tree")
                first = node + 24 + 8   # past the header and key 0: (child, key) pairs
                self._at(node + 24, 8 + 16 * used)
                self._spend(used)
                stack.extend(child for child, in _CHILD.iter_unpack(self.buf[first:first + 16 * used]))
                del level
            elif sig == b"SNOD":
                if self.buf[node + 4] != 1:
                    raise Unsupported("symbol table node version")
                count, = struct.unpack_from("<H", self.buf, node + 6)
                self._at(node + 8, 40 * count)
                self._spend(count)   # a node reached again costs again: the work stays linear
                for name, header in _SYMBOL.iter_unpack(self.buf[node + 8:node + 8 + 40 * count]):
                    out[self._name(heap, name)] = header
            else:
                raise Unsupported("an unknown B-tree node")
        return out

    def _messages(self, address):
        """[(type, offset of the data, size)] of a version-1 object header."""
        self._at(address, 16)
        version, _, count, _, size = struct.unpack_from("<BBHII", self.buf, address)
        if version != 1:
            raise Unsupported("object header version")
        blocks, out = [(address + 16, size)], []
        while blocks and len(out) < count:
            start, length = blocks.pop()
            self._at(start, length)
            pos, end = start, start + length
            while pos + 8 <= end and len(out) < count:
                self._spend()
                kind, n = _MESSAGE.unpack_from(self.buf, pos)
                if pos + 8 + n > end:
                    raise Unsupported("a header message past its block")
                if kind == _MSG_CONTINUATION:
                    blocks.append((self._q(pos + 8), self._q(pos + 16)))
                out.append((kind, pos + 8, n))
                pos += 8 + n
        return out

    # ------------------------------------------------------------------ groups and datasets
    def _group(self, header, scratch):
        """The members of the object at ``header`` (``scratch``: its cached B-tree and heap
        addresses); None when it is not a group."""
        if scratch is None:
            for kind, at, _ in self._messages(header):
                if kind in (_MSG_LINK, _MSG_LINK_INFO):
                    raise Unsupported("a group of links")
                if kind == _MSG_SYMBOL_TABLE:
                    scratch = (self._q(at), self._q(at + 8))
            if scratch is None:
                return None
        return self._members(*scratch)

    def members(self, path):
        """{name: header address} of the group at ``path`` ("" is the root); None when there is no
        such group."""
        path = path.strip("/")
        if path in self._groups:
            return self._groups[path]
        if not path:
            found = self._group(self.root[1], self.root[2])
            if found is None:
                raise Unsupported("a root group without a symbol table")
        else:
            parent, _, name = path.rpartition("/")
            up = self.members(parent)
            found = None if up is None or name not in up else self._group(up[name], None)
        self._groups[path] = found
        return found

    def walk(self):
        """Visit every group, dataset and attribute of the file: Unsupported unless the index
        follows all of them.  Every object's attributes are read before any dataset is looked
        at, so a damaged attribute is ``Damaged`` even where a dataset then sends the file to
        h5py.  The work is bounded like every other."""
        stack, datasets = [""], []
        while stack:
            path = stack.pop()
            self.attrs(path)
            for name in self.members(path) or ():
                child = f"{path}/{name}" if path else name
                if self.members(child) is not None:
                    stack.append(child)
                else:
                    self.attrs(child)
                    datasets.append(child)
        for path in datasets:
            if self.dataset(path) is None:
                raise Unsupported("an object that is neither a group nor a dataset")

    def _address(self, path):
        """The object header address of ``path`` (the root for ""); None when there is none."""
        path = path.strip("/")
        if not path:
            return self.root[1]
        parent, _, name = path.rpartition("/")
        up = self.members(parent)
        return None if up is None or name not in up else up[name]

    def attrs(self, path):
        """{name: value} of the attributes of the object at ``path`` (None when there is no such
        object): a string (str), strings (a list of str), or numbers (an array)."""
        header = self._address(path)
        if header is None:
            return None
        out = {}
        for kind, at, n in self._messages(header):
            if kind == _MSG_ATTRIBUTE_INFO:
                raise Unsupported("attributes in dense storage")
            if kind == _MSG_ATTRIBUTE:
                try:
                    name, value = self._attribute(at, n)
                except Unsupported as e:
                    raise Damaged(f"an attribute of {path or '/'!r} fastmlp cannot read ({e})") from None
                out[name] = value
        return out

    def _attribute(self, at, n):
        end = at + n
        version, flags, name_size, type_size, space_size = struct.unpack_from("<BBHHH", self.buf, self._at(at, 9))
        if version == 1:
            pad, pos = (lambda k: (k + 7) & ~7), at + 8
        elif version in (2, 3) and not flags & 0b11:   # (shared datatypes or dataspaces: not followed)
            pad, pos = (lambda k: k), at + (9 if version == 3 else 8)
        else:
            raise Unsupported("an attribute message version")
        if name_size < 1 or pos + pad(name_size) + pad(type_size) + pad(space_size) > end:
            raise Unsupported("an attribute message's sizes")
        raw = self.buf[pos:pos + name_size - 1]
        try:
            name = bytes(raw).decode("utf8")
        except UnicodeDecodeError:
            raise Unsupported("an attribute name that is not UTF-8") from None
        pos += pad(name_size)
        type_at, pos = pos, pos + pad(type_size)
        shape = self._dataspace(pos, space_size)
        data = pos + pad(space_size)
        count = math.prod(shape)
        head, = struct.unpack_from("<I", self.buf, self._at(type_at, 8))
        cls, size = head & 0x0F, struct.unpack_from("<I", self.buf, type_at + 4)[0]
        if count * max(size, 1) > end - data:
            raise Unsupported("attribute data past its message")
        self._spend(1 + count)
        if cls == 9 and (head >> 8) & 0x0F == 1 and size == 16:   # variable-length strings
            values = [self._global_string(data + 16 * i) for i in range(count)]
        elif cls == 3:   # fixed-length strings, padded with nulls or spaces
            values = [bytes(self.buf[data + size * i:data + size * (i + 1)]).rstrip(b"\0 ").decode("utf8", "replace")
                      for i in range(count)]
        else:
            dtype = self._datatype(type_at, type_size)
            return name, np.frombuffer(self.buf, dtype, count, data).reshape(shape).copy()
        return name, values[0] if shape == () else values

    def _global_string(self, at):
        """A variable-length string: its length, then (global heap collection, object index)."""
        length, collection, index = struct.unpack_from("<IQI", self.buf, self._at(at, 16))
        objects = self._collection(collection)
        if index not in objects or objects[index][1] < length:
            raise Unsupported("a string outside its global heap")
        start = objects[index][0]
        try:
            return bytes(self.buf[start:start + length]).decode("utf8")
        except UnicodeDecodeError:
            raise Unsupported("a string that is not UTF-8") from None

    def _collection(self, address):
        """{object index: (start, size)} of a global heap collection (read once)."""
        found = self._collections.get(address)
        if found is None:
            self._at(address, 16)
            if bytes(self.buf[address:address + 4]) != b"GCOL" or self.buf[address + 4] != 1:
                raise Unsupported("not a version-1 global heap collection")
            size, = struct.unpack_from("<Q", self.buf, address + 8)
            self._at(address, size)
            found, pos, end = {}, address + 16, address + size
            while pos + 16 <= end:
                self._spend()
                index, _, _, length = struct.unpack_from("<HHIQ", self.buf, pos)
                if index == 0:   # the free space: the end of the objects
                    break
                if pos + 16 + length > end:
                    raise Unsupported("a global heap object past its collection")
                found[index] = (pos + 16, length)
                pos += 16 + ((length + 7) & ~7)
            self._collections[address] = found
        return found

    def dataset(self, path):
        """(dtype, shape, offset) of the contiguous dataset at ``path``; None when there is none."""
        parent, _, name = path.strip("/").rpartition("/")
        up = self.members(parent)
        if up is None or name not in up:
            return None
        shape = dtype = layout = None
        for kind, at, n in self._messages(up[name]):
            if kind == _MSG_DATASPACE:
                shape = self._dataspace(at, n)
            elif kind == _MSG_DATATYPE:
                dtype = self._datatype(at, n)
            elif kind == _MSG_LAYOUT:
                layout = self._layout(at, n)
            elif kind in (_MSG_FILTERS, _MSG_EXTERNAL, _MSG_SYMBOL_TABLE, _MSG_LINK, _MSG_LINK_INFO):
                raise Unsupported("not a plain contiguous dataset")
        if shape is None or dtype is None or layout is None:
            raise Unsupported("a dataset header without shape, type or layout")
        offset, size = layout
        if size != math.prod(shape) * dtype.itemsize:   # exact: Python integers
            raise Unsupported("storage size and shape disagree")
        self._inside(offset, size)   # (its values are not read here)
        return dtype, shape, offset

    def _dataspace(self, at, n):
        version, rank, flags = struct.unpack_from("<BBB", self.buf, self._at(at, 4))
        if version == 1:
            dims = at + 8
        elif version == 2:
            if self.buf[at + 3] != (1 if rank else 0):
                raise Unsupported("a null dataspace")
            dims = at + 4
        else:
            raise Unsupported("dataspace version")
        if rank > 32 or dims + 8 * rank > at + n:
            raise Unsupported("dataspace rank")
        del flags
        return struct.unpack_from(f"<{rank}Q", self.buf, self._at(dims, 8 * rank))

    def _datatype(self, at, n):
        head, = struct.unpack_from("<I", self.buf, self._at(at, 8))
        cls, bits, size = head & 0x0F, (head >> 8) & 0xFFFFFF, struct.unpack_from("<I", self.buf, at + 4)[0]
        if cls == 0:   # fixed point: little-endian, no padding bits
            offset, precision = struct.unpack_from("<HH", self.buf, self._at(at + 8, 4))
            if bits & 0b111 or size not in (1, 2, 4, 8) or offset != 0 or precision != 8 * size:
                raise Unsupported("an integer type")
            return np.dtype(("<i" if bits & 0b1000 else "<u") + str(size))
        if cls == 1:   # IEEE floating point, little-endian
            self._at(at + 8, 12)
            offset, precision, eloc, esize, mloc, msize, bias = struct.unpack_from("<HHBBBBI", self.buf, at + 8)
            sign = (bits >> 8) & 0xFF
            if (bits & 0b1001111) or size not in _IEEE or offset != 0 or precision != 8 * size \
                    or (eloc, esize, mloc, msize, bias) != _IEEE[size] or sign != 8 * size - 1 \
                    or (bits >> 4) & 0b11 != 2:   # normalization: implied leading bit
                raise Unsupported("a floating-point type")
            return np.dtype("<f" + str(size))
        raise Unsupported("a datatype class other than numbers")

    def _layout(self, at, n):
        version, cls = struct.unpack_from("<BB", self.buf, self._at(at, 2))
        if version != 3 or cls != 1 or n < 18:
            raise Unsupported("not contiguous storage")
        offset, size = self._q(at + 2), self._q(at + 10)
        if offset == _UNDEFINED:
            raise Unsupported("storage never written")
        return offset, size
