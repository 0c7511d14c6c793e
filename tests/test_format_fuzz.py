"""Fuzz the model-file reader with Hypothesis over mutated files, in a subprocess
whose address space is capped (resource.setrlimit), so that a reader allocating
from an unchecked size fails loudly instead of swapping, and a crash (a signal)
is reported instead of taking pytest down.  Mutations are applied both raw
(caught by the checksums) and re-sealed with valid checksums (reaching the
structural and semantic checks)."""
import os
import subprocess
import sys
import textwrap

import pytest

import fastmlp

pytest.importorskip("hypothesis")

HERE = os.path.dirname(os.path.abspath(__file__))

SCRIPT = textwrap.dedent(r'''
    import json, os, resource, sys
    if not os.environ.get("FASTMLP_SANITIZED"):   # AddressSanitizer reserves far more address space
        resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))
    import numpy as np
    from hypothesis import HealthCheck, given, settings, strategies as st
    import fastmlp
    from fastmlp import layers
    from test_saving import seal, split

    fastmlp.utils.set_random_seed(0)
    m = fastmlp.Sequential([fastmlp.Input(shape=(4,)), layers.Dense(5, activation="relu"),
                            layers.Dropout(0.2), layers.Dense(2, activation="softmax")])
    m.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    m.fit(np.ones((4, 4), np.float32), np.array([0, 1, 0, 1]), verbose=0)
    GOOD = m.to_bytes()
    INT8 = m.to_bytes(dtype="int8")
    outcomes = {"ok": 0, "FormatError": 0}

    def attempt(data):
        try:
            fastmlp.models.from_bytes(data)
            outcomes["ok"] += 1
        except fastmlp.FormatError:
            outcomes["FormatError"] += 1

    JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False)
                               | st.text(max_size=8), lambda c: st.lists(c, max_size=3)
                               | st.dictionaries(st.text(max_size=6), c, max_size=3), max_leaves=6)

    def paths(obj, prefix=()):
        yield prefix
        if isinstance(obj, dict):
            for k, v in obj.items():
                yield from paths(v, prefix + (k,))
        elif isinstance(obj, list):
            for i, v in enumerate(obj):
                yield from paths(v, prefix + (i,))

    CFG = settings(max_examples=int(sys.argv[1]), deadline=None, database=None,
                   suppress_health_check=list(HealthCheck))

    @CFG
    @given(st.sampled_from([GOOD, INT8]), st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)),
                                                    min_size=1, max_size=4),
           st.integers(-1, 10**6), st.booleans())
    def raw(base, edits, cut, reseal):
        b = bytearray(base)
        for pos, val in edits:
            b[pos % len(b)] = val
        if cut >= 0:
            b = b[:cut % (len(b) + 1)]
        if reseal and len(b) >= 64:
            try:
                pre, header, body = split(b)
            except Exception:
                return attempt(bytes(b))
            b = seal(pre, header, body)
        attempt(bytes(b))

    @CFG
    @given(st.sampled_from([GOOD, INT8]), st.data())
    def header(base, data):
        pre, h, body = split(base)
        all_paths = [p for p in paths(h) if p]
        for _ in range(data.draw(st.integers(1, 3))):
            path = data.draw(st.sampled_from(all_paths))
            target = h
            try:
                for k in path[:-1]:
                    target = target[k]
                target[path[-1]] = data.draw(JSON_VALUES)
            except (KeyError, IndexError, TypeError):
                pass
        try:
            blob = seal(pre, h, body)
        except (TypeError, ValueError, OverflowError):
            return
        attempt(blob)

    raw()
    header()
    print("OUTCOMES", json.dumps(outcomes))
''')


def test_fuzz_reader_in_a_limited_subprocess():
    # the child imports fastmlp the way this process did (installed, or PYTHONPATH=src in a dev tree)
    paths = [os.path.dirname(os.path.dirname(fastmlp.__file__)), HERE, os.environ.get("PYTHONPATH", "")]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(paths),
               OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-c", SCRIPT, os.environ.get("FASTMLP_FUZZ_EXAMPLES", "250")],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"fuzz run failed (rc={proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    assert "OUTCOMES" in proc.stdout
