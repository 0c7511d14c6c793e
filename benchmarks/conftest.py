"""pytest-benchmark suite of fastmlp (see README.md).  Not collected by a plain ``pytest``
(the repository's ``testpaths`` is ``tests``); run it with

    python -m pytest benchmarks --benchmark-only
"""
import os
import sys

os.environ.setdefault("KERAS_BACKEND", "torch")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

try:
    import fastmlp  # noqa: F401
except ImportError:  # a checkout with the extension built in place, without PYTHONPATH=src
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                    "src"))
