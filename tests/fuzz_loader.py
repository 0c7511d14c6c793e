"""Coverage-guided fuzzing of the model-file loader with atheris (libFuzzer).

Every input must load or raise ``fastmlp.FormatError``; any other exception,
a crash, a hang or an out-of-memory is a finding.  The seed corpus is
``tests/data/fuzz_corpus`` (valid files of every family the writer makes);
``tests/test_fuzz_coverage.py`` runs a bounded session in CI.  By hand::

    PYTHONPATH=src python tests/fuzz_loader.py tests/data/fuzz_corpus -runs=100000 -max_len=65536

(pass a scratch folder first to keep what the fuzzer finds out of the repository).
"""
import sys

import atheris

with atheris.instrument_imports():
    import fastmlp


def one_input(data):
    try:
        fastmlp.models.from_bytes(data)
    except fastmlp.FormatError:
        pass


if __name__ == "__main__":
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
