"""Build script: one extension, ``fastmlp._engine``, made of the Cython
boundary and every C11 kernel in ``csrc/``.

* ``-O3`` but never ``-march=native``: SIMD kernels are compiled for their own
  targets inside their files and chosen at run time (see ``csrc/cpu.c``).
* OpenMP is optional: we probe for it and build sequential kernels, with a
  warning, when the compiler lacks it.
* ``FASTMLP_DEBUG=1`` turns Cython bounds checking back on and drops to -O0 -g.
* Values never depend on the compiler's choices: floating-point contraction
  (a*b + c fused into one FMA where the compiler likes) is off for every
  compiler we build with, so a value's rounding does not depend on where a
  vectorized loop or a GEMM tile starts.  The SIMD micro-kernels use FMA
  explicitly, through intrinsics, where they mean to.
* The layer kinds live one per file in ``csrc/kinds/``; every ``.c`` file
  under ``csrc/`` is compiled.
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
if sys.platform == "win32":
    extra_compile = ["/O2", "/fp:precise"]          # MSVC: precise mode does not contract
else:
    extra_compile = ["-std=gnu11", "-fno-math-errno", "-ffp-contract=off"] + opt + omp_compile

csources = sorted(glob.glob(os.path.join("csrc", "*.c")) + glob.glob(os.path.join("csrc", "kinds", "*.c")))

ext = Extension(
    "fastmlp._engine",
    sources=[os.path.join("src", "fastmlp", "_engine.pyx")] + csources,
    depends=sorted(glob.glob(os.path.join("csrc", "*.h")) + glob.glob(os.path.join("csrc", "kinds", "*.h"))) +
    sorted(glob.glob(os.path.join("src", "fastmlp", "_*.p*"))),
    include_dirs=["csrc", os.path.join("csrc", "kinds"), np.get_include()],
    define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
    extra_compile_args=extra_compile,
    extra_link_args=omp_link,
)

# In-place builds of earlier versions compiled the Python modules too; such a
# module would shadow its .py file.
for stale in glob.glob(os.path.join(HERE, "src", "fastmlp", "*" + sysconfig.get_config_var("EXT_SUFFIX"))):
    if not os.path.basename(stale).startswith("_engine."):
        os.remove(stale)

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
    ),
)
