"""A bounded coverage-guided fuzz run of the loader (atheris), from the committed
seed corpus: every mutated file loads or raises FormatError."""
import os
import shutil
import subprocess
import sys

import pytest

pytest.importorskip("atheris")

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "data", "fuzz_corpus")


def test_coverage_guided_fuzzing_of_the_loader_finds_nothing(tmp_path):
    import fastmlp
    work = tmp_path / "corpus"
    shutil.copytree(CORPUS, work)   # the fuzzer adds to its first corpus folder: keep the repository's clean
    runs = os.environ.get("FASTMLP_FUZZ_RUNS", "3000")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.dirname(os.path.dirname(fastmlp.__file__)),
                                                       os.environ.get("PYTHONPATH", "")]),
               OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, os.path.join(HERE, "fuzz_loader.py"), str(work), f"-runs={runs}",
                           "-max_len=65536", "-rss_limit_mb=2048", "-timeout=20", "-max_total_time=120",
                           f"-artifact_prefix={tmp_path}/", "-seed=1"],
                          capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "Done" in proc.stderr or "DONE" in proc.stderr, proc.stderr[-2000:]
