"""The compiled header parser (``_engine.parse_json``, src/fastmlp/_json.pxi)
against the decoder the loader uses today,
``json.JSONDecoder(parse_constant=reject).decode(data.decode("utf-8"))``:
for every input, either both return values equal in type and value (floats by
repr, dicts in key order) or both fail, ours with ValueError only."""
import json
import mmap
import struct
import sys
import tracemalloc

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import fastmlp
from fastmlp import layers

_engine = pytest.importorskip("fastmlp._engine")
parse_json = _engine.parse_json

CFG = settings(deadline=None, suppress_health_check=list(HealthCheck))


def _reject(name):
    raise ValueError(f"JSON constant {name} is not allowed")


ORACLE = json.JSONDecoder(parse_constant=_reject)


def oracle(data):
    return ORACLE.decode(bytes(data).decode("utf-8"))


def same(a, b):
    """Equal in type and value: floats by repr (-0.0 is not 0.0, 1 is not 1.0),
    dicts item by item in order."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return repr(a) == repr(b)
    if isinstance(a, dict):
        return len(a) == len(b) and all(ka == kb and same(va, vb)
                                        for (ka, va), (kb, vb) in zip(a.items(), b.items()))
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


def depth(v):
    if isinstance(v, dict):
        return 1 + max((depth(x) for x in v.values()), default=0)
    if isinstance(v, list):
        return 1 + max((depth(x) for x in v), default=0)
    return 0


def agrees(data):
    """parse_json(data) does what the loader's decoder does (returns the parsed value or None)."""
    try:
        want = oracle(data)
    except (ValueError, RecursionError):   # UnicodeDecodeError is a ValueError
        with pytest.raises(ValueError):
            parse_json(data)
        return None
    if depth(want) > 128:
        with pytest.raises(ValueError, match="nesting deeper than 128"):
            parse_json(data)
        return None
    got = parse_json(data)
    assert same(got, want), (data, got, want)
    return got


def real_header_file():
    m = fastmlp.Sequential([fastmlp.Input(shape=(784,)), layers.Dense(512, activation="relu"),
                            layers.Dense(512, activation="relu"), layers.Dense(10, activation="softmax")])
    m.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    b = m.to_bytes(include_optimizer=False)
    h_len = fastmlp.saving.PREAMBLE.unpack_from(b)[5]
    return b, h_len


FILE, H_LEN = real_header_file()
HEADER = FILE[64:64 + H_LEN]


# ---- the real header ---------------------------------------------------------

def test_real_header_parses_equal_to_json():
    assert HEADER.startswith(b'{"format":"fastmlp-model"')
    assert same(parse_json(HEADER), oracle(HEADER))


def test_real_header_parses_in_place_inside_the_file_from_any_buffer():
    want = oracle(HEADER)
    for buf in (FILE, bytearray(FILE), memoryview(FILE), np.frombuffer(FILE, np.uint8)):
        assert same(parse_json(buf, 64, H_LEN), want)


def test_real_header_parses_from_an_mmap(tmp_path):
    path = tmp_path / "m.fmlp"
    path.write_bytes(FILE)
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        assert same(parse_json(mm, 64, H_LEN), oracle(HEADER))


def test_repeated_parses_share_cached_strings_and_stay_equal():
    a, b = parse_json(HEADER), parse_json(HEADER)
    assert same(a, b)
    assert next(iter(a)) is next(iter(b))   # "format", from the string cache
    _engine._json_key_cache_clear()
    assert same(parse_json(HEADER), a)



def test_cached_strings_are_interned_so_config_keys_match_keyword_names_by_identity():
    _engine._json_key_cache_clear()
    for header in (parse_json(HEADER), parse_json(HEADER)):   # entering the cache, then from it
        config = header["model"]["config"]["layers"][1]["config"]
        assert all(k is sys.intern(k) for k in config)
        assert config["activation"] is sys.intern("relu")
    long_key = "k" * 40   # past the cache: a plain new string
    assert parse_json(json.dumps({long_key: 1}).encode()) == {long_key: 1}

# ---- round trips -------------------------------------------------------------

FLOATS = (st.floats(allow_nan=False, allow_infinity=False)
          | st.sampled_from([0.0, -0.0, 1e308, -1e308, 5e-324, -5e-324, 1.7976931348623157e308,
                             2.2250738585072014e-308, 0.1, 1e-07, 1e16, 123456789012345680.0]))
INTS = (st.integers(-2**70, 2**70)
        | st.sampled_from([0, -1, 255, 256, 257, 10**18 - 1, 10**18, 2**63 - 1, 2**63, -2**63, 2**64])
        | st.integers(10**100, 10**300).map(lambda i: i * (-1) ** (i % 2)))
CHARS = st.characters(codec=None, categories=None)   # every code point, surrogates included
TEXT = st.text(CHARS, max_size=40) | st.text(st.sampled_from('"\\/\b\f\n\r\t\x00\x1f\x7f aé€😀\ud800\udc00'),
                                             max_size=12)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | INTS | FLOATS | TEXT,
    lambda kids: st.lists(kids, max_size=5) | st.dictionaries(TEXT, kids, max_size=5),
    max_leaves=40)


def has_surrogate(v):
    if isinstance(v, str):
        return any(0xD800 <= ord(c) <= 0xDFFF for c in v)
    if isinstance(v, dict):
        return any(has_surrogate(k) or has_surrogate(x) for k, x in v.items())
    if isinstance(v, list):
        return any(has_surrogate(x) for x in v)
    return False


@CFG
@given(JSON_VALUES, st.sampled_from([(",", ":"), (", ", ": "), None]), st.sampled_from([None, 1, "\t"]))
def test_round_trip_of_ascii_json_equals_json_loads(value, separators, indent):
    text = json.dumps(value, separators=separators, indent=indent, ensure_ascii=True, allow_nan=False)
    got = agrees(text.encode("ascii"))
    assert same(got, json.loads(text))
    if not has_surrogate(value):   # json itself joins an escaped high-low pair
        assert same(got, value)


@CFG
@given(JSON_VALUES)
def test_round_trip_of_utf8_json_equals_json_loads(value):
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    if has_surrogate(value):
        # Raw surrogates cannot be UTF-8: both sides reject the bytes.
        agrees(text.encode("utf-8", "surrogatepass"))
    else:
        assert same(agrees(text.encode("utf-8")), value)


@CFG
@given(st.from_regex(r"-?(0|[1-9][0-9]{0,40})(\.[0-9]{1,40})?([eE][+-]?[0-9]{1,5})?", fullmatch=True))
def test_every_number_of_the_grammar_converts_as_float_and_int_do(text):
    got = agrees(text.encode("ascii"))
    assert same(got, float(text) if any(c in text for c in ".eE") else int(text))


# ---- malformed and odd inputs ------------------------------------------------

JSONISH = st.lists(st.sampled_from(
    ['{', '}', '[', ']', '"', ',', ':', ' ', '\t', '\n', '\r', '\x0c', '\\', '/', '0', '1', '9', '-', '+',
     '.', 'e', 'E', 'true', 'false', 'null', 'NaN', 'Infinity', 'u', 'ud800', 'udc00', 'u00e9', 'x', 'a',
     '"a"', '"key":', '\x00', '\x1f', '\x7f', 'é', '😀', '\ufeff', '\u2028', '\xa0']), max_size=40).map(
    lambda parts: "".join(parts).encode("utf-8"))


@CFG
@given(st.binary(max_size=80) | JSONISH)
def test_arbitrary_bytes_give_the_same_value_or_both_fail(data):
    agrees(data)


@CFG
@given(st.lists(st.tuples(st.sampled_from(["flip", "set", "insert", "delete"]),
                          st.integers(0, len(HEADER) - 1), st.integers(0, 255)), min_size=1, max_size=4),
       st.sampled_from([b"\\", b'"', b"\x00", b"\xff", b"\xc3", b"9", b"e", b"{", b"]", b",", b" ", b"."]))
@example([("set", 1, ord("'"))], b"")
@example([("insert", len(HEADER) - 1, ord(","))], b"")
def test_mutations_of_the_real_header_give_the_same_value_or_both_fail(edits, token):
    data = bytearray(HEADER)
    for kind, pos, byte in edits:
        pos = min(pos, len(data) - 1)
        if kind == "flip":
            data[pos] ^= 1 << (byte % 8)
        elif kind == "set":
            data[pos] = byte
        elif kind == "insert":
            data[pos:pos] = token or bytes([byte])
        elif len(data) > 1:
            del data[pos]
    agrees(bytes(data))


REJECTED = [
    # empty, whitespace, byte order mark, trailing data
    b"", b" ", b" \t\r\n", b"\xef\xbb\xbf{}", b"\xef\xbb\xbf1", b"\x0c1", b"\x0b1", b"\xc2\xa01", b"1\x00",
    b"1 x", b"{}{}", b"[]]", b"1 2", b'"a" "b"', b"{} ,", b"\x00",
    # numbers
    b"01", b"-01", b"00", b"00.5", b"+1", b".5", b"-.5", b"1.", b"1.e5", b"1e", b"1e+", b"1E-", b"-", b"--1",
    b"- 1", b"0x10", b"1_000", b"1.5.5", b"1e5e5", b"0.0.0", b"[1.]", b"[01]", b"[-]", b'{"a":.5}',
    b"1" * 4301, b"-" + b"1" * 4301, b"[" + b"7" * 5000 + b"]",
    # constants
    b"NaN", b"-NaN", b"Infinity", b"-Infinity", b"[NaN]", b'{"a":-Infinity}', b"nan", b"inf", b"-inf",
    b"True", b"tru", b"nul", b"NULL", b"falsey", b"none", b"undefined",
    # structure
    b"[", b"]", b"{", b"}", b"[1,]", b'{"a":1,}', b"[,1]", b"[,]", b"{,}", b'{"a"}', b'{"a":}', b'{"a" 1}',
    b"{1:2}", b"{'a':1}", b"{a:1}", b"[1 2]", b"[1:2]", b'{"a":1 "b":2}', b'{"a",1}', b"[}", b"{]",
    b'["a",]', b'{"a":1}}',
    # strings
    b'"', b'"abc', b'"abc\\"', b'"\\x"', b'"\\a"', b'"\\U0041"', b'"\\u12"', b'"\\u12G4"', b'"\\u-123"',
    b'"\\', b'"\\u', b'"\\u00e9', b"'a'", b'"\x00"', b'"\x1f"', b'"\n"', b'"\t"', b'"a\rb"',
    b'"\xff"', b'"\xc3"', b'"\xc3("', b'"\xed\xa0\x80"', b'"\xc0\x80"', b'"\xe0\x80\x80"',
    b'"\xf4\x90\x80\x80"', b'"\xf8\x88\x80\x80\x80"', b'"\x80"', b'"a\\"\xff"', b'"\\u00e9\xff"',
    b'["ok", "\xfe"]', b'{"k\xff":1}', b'"\xe2\x82"',
]


@pytest.mark.parametrize("data", REJECTED, ids=range(len(REJECTED)))
def test_each_rejection_rule_raises_value_error_like_json(data):
    with pytest.raises((ValueError, RecursionError)):
        oracle(data)
    with pytest.raises(ValueError):
        parse_json(data)


ACCEPTED = [
    b"0", b"-0", b"-0.0", b"0e0", b"0E+0", b"1E+2", b"2.5e-3", b"-1.5E-300", b"1e400", b"-1e400", b"1e-400",
    b"123456789012345678", b"1234567890123456789", b"-9223372036854775808", b"18446744073709551616",
    b"1" * 4300, b"-" + b"1" * 4300, b"0." + b"1" * 100, b"1e" + b"0" * 50 + b"1", b"9" * 400 + b".5",
    b"0.1000000000000000055511151231257827", b"2.2250738585072011e-308", b"4.9406564584124654e-324",
    b"true", b"false", b"null", b" \t\n\r[ 1 , { \"a\" : [ ] , \"b\" : { } } ]\r\n ",
    b'""', b'"\\""', b'"\\\\"', b'"\\/"', b'"\\b\\f\\n\\r\\t"', b'"\x7f"', b'"caf\xc3\xa9"', b'"\xf0\x9f\x98\x80"',
    b'"\xe2\x80\xa8"', b'"\\u00e9"', b'"\\u00E9"', b'"\\ud83d\\ude00"', b'"\\uD83D\\uDE00"', b'"\\ud800"',
    b'"\\udc00"', b'"\\udc00\\ud800"', b'"\\ud800\\u0041"', b'"\\ud800\\ud800\\udc00"', b'"\\ud800x"',
    b'"\\ud800\\n"', b'"\\u0000"', b'"a\\u0000b"', b'"\xc3\xa9\\n\xf0\x9f\x98\x80"',
    b'{"a":1,"b":2,"a":3}', b'{"a":{"x":1},"a":[2]}', b'{"":0}', b'[[],{},[[]],{"a":{}}]',
    b'"' + b"x" * 31 + b'"', b'"' + b"x" * 32 + b'"', b'"' + b"x" * 33 + b'"', b'"' + b"x" * 1000 + b'"',
]


@pytest.mark.parametrize("data", ACCEPTED, ids=range(len(ACCEPTED)))
def test_accepted_inputs_parse_exactly_as_json_does(data):
    assert agrees(data) is not None or data == b"null"


def test_duplicate_keys_keep_the_first_position_and_the_last_value():
    got = parse_json(b'{"a":1,"b":2,"a":3}')
    assert list(got.items()) == [("a", 3), ("b", 2)]


def test_surrogate_escapes_combine_only_as_a_high_low_pair():
    assert parse_json(b'"\\ud83d\\ude00"') == "\U0001F600"
    assert parse_json(b'"\\ud800\\u0041"') == "\ud800A"
    assert parse_json(b'"\\udc00\\ud800"') == "\udc00\ud800"


def test_integers_are_limited_to_4300_digits():
    assert parse_json(b"9" * 4300) == int("9" * 4300)
    with pytest.raises(ValueError, match="4301 digits"):
        parse_json(b"9" * 4301)


def test_a_lower_int_max_str_digits_is_honoured_as_json_honours_it():
    old = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(640)
    try:
        assert agrees(b"7" * 640) == int("7" * 640)
        agrees(b"7" * 641)
        with pytest.raises(ValueError):
            parse_json(b"[" + b"7" * 641 + b"]")
    finally:
        sys.set_int_max_str_digits(old)


def test_the_error_names_the_problem_and_the_byte_offset():
    with pytest.raises(ValueError, match=r"expecting ',' or '}' at byte 7"):
        parse_json(b'{"a":1 "b":2}')
    with pytest.raises(ValueError, match="extra data at byte 3"):
        parse_json(b"[] x")
    with pytest.raises(ValueError, match="NaN"):
        parse_json(b"[NaN]")
    with pytest.raises(ValueError, match="invalid UTF-8 in a string at byte 5"):
        parse_json(b'"ab\xc3\xa9\xff"', 0)  # offset counts from the start of the buffer
    with pytest.raises(ValueError, match="at byte 6"):
        parse_json(b'xxxxx[,]', 5)


@pytest.mark.parametrize("n", range(0, 41))
@pytest.mark.parametrize("tail", [b"", b" ", b"]" + b" " * 40])
def test_strings_of_every_length_near_the_end_of_the_buffer(n, tail):
    # The word scan reads up to 32 bytes ahead; it must stay inside the buffer
    # and agree with the byte scan, also for a special byte at each position.
    body = bytes(97 + i % 26 for i in range(n))
    opener = b"[" if tail.startswith(b"]") else b""
    agrees(opener + b'"' + body + b'"' + tail)
    for i in range(n):
        for special in (b"\\n", b"\\u00e9", b"\xc3\xa9", b"\x01", b"\xff"):
            agrees(opener + b'"' + body[:i] + special + body[i:] + b'"' + tail)
    agrees(opener + b'"' + body + tail)   # unterminated


def test_many_distinct_keys_thrash_the_cache_but_stay_correct():
    keys = [f"k{i}_{'x' * (i % 30)}" for i in range(5000)]
    obj = {k: i for i, k in enumerate(keys)}
    data = json.dumps(obj).encode()
    assert same(parse_json(data), obj)
    assert same(parse_json(data), obj)
    near = {"dense_1/kernel": 1, "dense_2/kernel": 2, "dense_1/kernem": 3, "dense_1/kernel ": 4,
            "a" * 8: 5, "a" * 16: 6, "a" * 24: 7, "a" * 32: 8, "a" * 7: 9, "a" * 9: 10}
    assert same(parse_json(json.dumps(near).encode()), near)


def test_long_and_nested_lists_are_built_with_their_items_in_order():
    # List items wait on a value stack until their ']' (first on the C stack, then the heap).
    value = [list(range(i)) for i in range(150)] + [[[["x"] * 70, [None] * 3]] * 3, [], [[]]]
    assert same(agrees(json.dumps(value).encode()), value)
    n = 300   # open lists each holding a pending item: [1,[1,[1,...[1,2]...]]]
    want = [1, 2]
    for _ in range(n - 1):
        want = [1, want]
    assert parse_json(b"[1," * n + b"2" + b"]" * n, max_depth=n) == want


# ---- nesting -----------------------------------------------------------------

def test_deep_nesting_raises_value_error_not_recursion_error():
    for opener in (b"[", b'{"a":'):
        with pytest.raises(ValueError, match="nesting deeper than 128"):
            parse_json(opener * 10**5)
    with pytest.raises(ValueError, match="nesting deeper than 128"):
        parse_json(b"[" * 129 + b"]" * 129)
    assert parse_json(b"[" * 128 + b"]" * 128) == parse_json(b"[" * 127 + b"[]" + b"]" * 127)


def test_max_depth_is_honoured_with_an_explicit_stack():
    assert parse_json(b"1", max_depth=0) == 1
    with pytest.raises(ValueError, match="nesting deeper than 0"):
        parse_json(b"[]", max_depth=0)
    with pytest.raises(ValueError, match="nesting deeper than 1"):
        parse_json(b"[[1]]", max_depth=1)
    assert parse_json(b"[[1]]", max_depth=2) == [[1]]
    n = 20000   # far deeper than C recursion could go: the stack grows on the heap
    want = got = parse_json(b"[" * n + b"1" + b"]" * n, max_depth=n)
    for _ in range(n):
        assert type(got) is list and len(got) == 1
        got = got[0]
    assert got == 1 and want is not None
    deep = b'{"a":' * 100 + b"[true]" + b"}" * 100
    assert same(parse_json(deep, max_depth=101), oracle(deep))
    with pytest.raises(ValueError):
        parse_json(b"1", max_depth=-1)


# ---- the byte range and the buffer -------------------------------------------

def test_start_and_length_select_the_text_and_nothing_is_read_past_it():
    assert parse_json(b"xx[1]yy", 2, 3) == [1]
    assert parse_json(b"xx[1]", 2) == [1]
    assert same(parse_json(b"1.55", 0, 3), 1.5)
    assert parse_json(b"123", 0, 2) == 12
    assert parse_json(b"trueX", 0, 4) is True
    assert parse_json(b'"ab"c', 0, 4) == "ab"
    assert parse_json(b"[1]   ", 0, 4) == [1]
    with pytest.raises(ValueError):
        parse_json(b'"abc"', 0, 4)      # the closing quote lies outside
    with pytest.raises(ValueError):
        parse_json(b"tru" + b"e", 0, 3)
    with pytest.raises(ValueError):
        parse_json(b"1e5", 0, 2)


@pytest.mark.parametrize("start, length", [(-1, -1), (5, -1), (4, 1), (0, 5), (0, -2), (2, 3), (-10, 2),
                                           (sys.maxsize, -1), (1, sys.maxsize)])
def test_a_byte_range_outside_the_buffer_raises_value_error(start, length):
    for buf in (b"[1,2", bytearray(b"[1,2"), np.frombuffer(b"[1,2", np.uint8)):
        with pytest.raises(ValueError, match="outside"):
            parse_json(buf, start, length)


def test_an_empty_range_is_empty_input():
    for start, length in [(0, 0), (4, -1), (4, 0), (2, 0)]:
        with pytest.raises(ValueError, match="empty"):
            parse_json(b"[1,2", start, length)


def test_inputs_without_a_contiguous_byte_buffer_are_refused():
    with pytest.raises(TypeError):
        parse_json("[1]")
    with pytest.raises((ValueError, BufferError)):
        parse_json(np.frombuffer(b"[1, 2]", np.uint8)[::2])


# ---- references --------------------------------------------------------------

def test_no_references_leak_on_success_or_on_errors():
    bad = [HEADER[:-1], HEADER[:1500] + b"}" + HEADER[1501:], b'{"a":[1,2,{"b":"\\ud800x"}],"c":' + b"[" * 200,
           b'{"a":[1,"\xff"]}', b'{"' + b"k" * 40 + b'":1,"x":NaN}', b'[' + b'"a",' * 200 + b'"\\q"]',
           b'[[1,2,[3,' + b'4,' * 100 + b'{"k":[5,6,{]']

    def run():
        for _ in range(300):
            parse_json(HEADER)
            for data in bad:
                try:
                    parse_json(data)
                except ValueError:
                    pass

    run()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        run()
        run()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 20_000, grown
