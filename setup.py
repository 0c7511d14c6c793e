"""Build script: one extension, ``fastmlp._engine``, made of the Cython
boundary and every C11 kernel in ``csrc/``.

* ``-O3`` but never ``-march=native``: SIMD kernels are compiled for their own
  targets inside their files and chosen at run time (see ``csrc/cpu.c``).
* OpenMP is optional: we probe for it and build sequential kernels, with a
  warning, when the compiler lacks it.
* ``FASTMLP_DEBUG=1`` turns Cython bounds checking back on and drops to -O0 -g.
* The plain-Python modules of the model, layer and file code are also compiled
  by Cython, as they are, with Python's semantics kept (no C typing from
  annotations, Python division, no FP contraction): the source stays the
  readable reference and the compiled module runs it about 1.4x faster, which
  is most of what loading a model or a small predict costs.  Python imports
  the compiled module in preference to the ``.py`` next to it, so after
  editing one rebuild (``python setup.py build_ext --inplace``); set
  ``FASTMLP_PURE_PYTHON=1`` to build the engine only and run the ``.py`` files.
"""
import glob
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import warnings

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

HERE = os.path.dirname(os.path.abspath(__file__))
DEBUG = os.environ.get("FASTMLP_DEBUG", "") not in ("", "0")


def _compiler_accepts(flags, source="int main(void){return 0;}\n"):
    cc = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    tmp = tempfile.mkdtemp()
    try:
        src = os.path.join(tmp, "probe.c")
        with open(src, "w") as f:
            f.write(source)
        cmd = cc.split() + [src, "-o", os.path.join(tmp, "probe")] + flags
        return subprocess.call(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) == 0
    except OSError:
        return False
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _openmp_flags():
    if os.environ.get("FASTMLP_NO_OPENMP", "") not in ("", "0"):
        return [], []
    probe = "#include <omp.h>\nint main(void){return omp_get_max_threads() > 0 ? 0 : 1;}\n"
    if sys.platform != "win32" and _compiler_accepts(["-fopenmp"], probe):
        return ["-fopenmp"], ["-fopenmp"]
    warnings.warn("fastmlp: the C compiler has no OpenMP; building single-threaded kernels")
    return [], []


omp_compile, omp_link = _openmp_flags()
opt = ["-O0", "-g"] if DEBUG else ["-O3"]
extra_compile = ["-std=gnu11", "-fno-math-errno"] + opt + omp_compile if sys.platform != "win32" else ["/O2"]

csources = sorted(glob.glob(os.path.join("csrc", "*.c")))

ext = Extension(
    "fastmlp._engine",
    sources=[os.path.join("src", "fastmlp", "_engine.pyx")] + csources,
    depends=sorted(glob.glob(os.path.join("csrc", "*.h"))) +
    [os.path.join("src", "fastmlp", f)
     for f in ("_engine.pxd", "_ops.pxi", "_kernels.pxi", "_checksum.pxi", "_format.pxi", "_filemap.pxi",
               "_json.pxi")],
    include_dirs=["csrc", np.get_include()],
    define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
    extra_compile_args=extra_compile,
    extra_link_args=omp_link,
)

# The Python modules on the paths that load, build, compile and call a model.
COMPILED_PY = ["activations", "callbacks", "initializers", "layers", "losses", "metrics", "models",
               "regularizers", "saving", "utils"]
PURE_PYTHON = os.environ.get("FASTMLP_PURE_PYTHON", "") not in ("", "0") or DEBUG

if PURE_PYTHON:   # an earlier in-place build's compiled modules would shadow the .py files
    for m in COMPILED_PY:
        for stale in glob.glob(os.path.join(HERE, "src", "fastmlp", m + sysconfig.get_config_var("EXT_SUFFIX"))):
            os.remove(stale)

py_exts = [] if PURE_PYTHON else [
    Extension("fastmlp." + m, [os.path.join("src", "fastmlp", m + ".py")],
              extra_compile_args=["-O2", "-g0", "-ffp-contract=off"] if sys.platform != "win32" else ["/O2"])
    for m in COMPILED_PY]

setup(
    ext_modules=cythonize(
        [ext],
        language_level=3,
        compiler_directives={
            "boundscheck": DEBUG,
            "wraparound": DEBUG,
            "cdivision": True,
            "initializedcheck": DEBUG,
            "embedsignature": True,
        },
    ) + (cythonize(
        py_exts,
        language_level=3,
        compiler_directives={"binding": True, "annotation_typing": False, "cdivision": False,
                             "boundscheck": True, "wraparound": True},
    ) if py_exts else []),
)
