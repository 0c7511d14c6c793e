"""The compiled tensor-table check (``_engine.check_tensor_table``): every rule of
docs/FORMAT.md's tensor tables, with the exact message, on tables as JSON decodes them."""
import pytest

from fastmlp import _engine
from fastmlp.saving import ALIGN, MAX_ELEMENTS, MAX_NDIM, FormatError, _ITEMSIZES


def check(table, section_len=128):
    return _engine.check_tensor_table(table, "weights", section_len, "tensor table", _ITEMSIZES, MAX_NDIM,
                                      MAX_ELEMENTS, ALIGN, FormatError)


def entry(name="d/kernel", dtype="float32", shape=(2, 3), offset=0, length=None):
    length = 4 * 6 if length is None else length
    return {"name": name, "dtype": dtype, "shape": list(shape), "offset": offset, "length": length}


def test_a_valid_table_comes_back_as_tuples_in_file_order():
    a, b = entry(), entry("d/bias", shape=[3], offset=64, length=12)
    assert check([a, b]) == [("d/kernel", "float32", (2, 3), 0, 24, a), ("d/bias", "float32", (3,), 64, 12, b)]
    assert check([], section_len=0) == []


@pytest.mark.parametrize("table, section_len, message", [
    ({"d/kernel": {}}, 128, "tensor table: the tensor table must be a list"),
    ([["d/kernel"]], 128, "tensor table: tensor #0 is not an object"),
    ([entry(name="")], 128, "tensor table: tensor #0 has no name"),
    ([entry(name=7)], 128, "tensor table: tensor #0 has no name"),
    ([entry(), entry(offset=64)], 128, "tensor table: tensor 'd/kernel' appears twice"),
    ([entry(dtype="complex64")], 128, "tensor table: tensor 'd/kernel' has unknown dtype 'complex64'"),
    ([entry(shape=[1] * 9)], 128, "tensor table: tensor 'd/kernel' has an invalid shape [1, 1, 1, 1, 1, 1, 1, 1, 1]"),
    ([entry(shape=[2, True])], 128, "tensor table: tensor 'd/kernel' has an invalid shape [2, True]"),
    ([entry(shape=[2, 3.0])], 128, "tensor table: tensor 'd/kernel' has an invalid shape [2, 3.0]"),
    ([entry(shape=[2, -3])], 128, "tensor table: tensor 'd/kernel' has an invalid shape [2, -3]"),
    ([entry(shape=[2 ** 70, 0])], 128,
     "tensor table: tensor 'd/kernel': the shape [1180591620717411303424, 0] overflows (byte count too large)"),
    ([entry(shape=[2 ** 31, 2 ** 31, 2])], 128,
     "tensor table: tensor 'd/kernel': the shape [2147483648, 2147483648, 2] overflows (byte count too large)"),
    ([entry(length=25)], 128,
     "tensor table: tensor 'd/kernel': length 25 does not match shape [2, 3] of float32 (24 bytes)"),
    ([entry(length=True)], 128,
     "tensor table: tensor 'd/kernel': length True does not match shape [2, 3] of float32 (24 bytes)"),
    ([entry(offset=None)], 128, "tensor table: tensor 'd/kernel' has an invalid offset None"),
    ([entry(offset=-64)], 128, "tensor table: tensor 'd/kernel' has an invalid offset -64"),
    ([entry(offset=32)], 128, "tensor table: tensor 'd/kernel': offset 32 is not 64-byte aligned"),
    ([entry(offset=64), entry("d/bias", shape=[3], offset=0, length=12)], 128,
     "tensor table: tensor 'd/bias': offset 0 overlaps the previous tensor or is out of order "
     "(tensors must be sorted by offset)"),
    ([entry(offset=2 ** 70)], 128,
     "tensor table: tensor 'd/kernel': bytes [1180591620717411303424, 1180591620717411303448) lie outside "
     "the 128-byte weights section"),
    ([entry()], 128, "tensor table: the weights section is 128 bytes but its tensors end at 24 "
                     "(expected 64: no trailing bytes)"),
    ([], 64, "tensor table: the weights section is 64 bytes but its tensors end at 0 (expected 0: no trailing bytes)"),
])
def test_each_broken_rule_raises_the_format_error_naming_it(table, section_len, message):
    with pytest.raises(FormatError) as info:
        check(table, section_len)
    assert str(info.value) == message


def test_a_zero_dimension_makes_a_huge_shape_empty():
    """The element count is checked as it is multiplied, in shape order, in exact integers."""
    assert check([entry(shape=[0, 2 ** 70], length=0)], section_len=0)[0][2] == (0, 2 ** 70)
