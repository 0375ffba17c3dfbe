"""Builds graphad's Cython extensions and the C kernels in csrc/.

Build time is dominated by gcc on the Cython-generated C (megabytes of Python-API glue), so the
extensions compile in parallel (one job per core) and the glue at -O2 without debug info (-O3
and -g buy it nothing but minutes).  _kernels, which holds the loops, the GEMM dispatch and the
C kernels of csrc/, keeps -O3: at -O2 a float32 10x256x10 A @ W^T took 2.9 us instead of 2.1.
"""
import os

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

MODULES = ["_kernels", "_core", "_prims", "_elementwise", "_shape", "_reductions", "_products",
           "_nn", "_compile", "_lapack", "_arena"]
C_SOURCES = ["csrc/ga_kernels.c", "csrc/ga_gemm.c"]
C_HEADERS = ["csrc/ga_kernels.h", "csrc/ga_gemm.h", "csrc/ga_gemm_impl.h"]   # rebuild on change
COMMON = ["-g0", "-fno-math-errno", "-fno-trapping-math", "-Wno-unreachable-code"]
KERNELS = ["-O3", "-falign-functions=64", "-falign-loops=32"]


class parallel_build_ext(build_ext):
    """build_ext with one compiler job per core unless -j says otherwise."""

    def finalize_options(self):
        super().finalize_options()
        if not self.parallel:
            self.parallel = os.cpu_count() or 1


extensions = [
    Extension(
        f"graphad.{name}",
        sources=[f"graphad/{name}.pyx"] + (C_SOURCES if name == "_kernels" else []),
        depends=C_HEADERS if name == "_kernels" else [],
        include_dirs=[np.get_include(), "csrc"],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=(KERNELS if name == "_kernels" else ["-O2"]) + COMMON,
    )
    for name in MODULES
]

setup(
    cmdclass={"build_ext": parallel_build_ext},
    ext_modules=cythonize(
        extensions,
        language_level=3,
        nthreads=os.cpu_count() or 1,
        compiler_directives={"embedsignature": True},
    ),
)
