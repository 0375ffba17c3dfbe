"""Builds graphad's Cython extensions and the C kernels in csrc/.

Build time is dominated by gcc on the Cython-generated C (megabytes of Python-API glue), so:
the extensions compile in parallel (one job per core), the glue at -O2 without debug info
(-O3 and -g buy it nothing but minutes), and only the hand-written kernels in csrc/, where the
time is spent at run time, at -O3 (a static library of their own, linked into _kernels).
"""
import os

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

MODULES = ["_kernels", "_core", "_prims", "_elementwise", "_shape", "_reductions", "_products", "_nn",
           "_compile"]
C_SOURCES = ["csrc/ga_kernels.c", "csrc/ga_gemm.c"]
C_HEADERS = ["csrc/ga_kernels.h", "csrc/ga_gemm.h", "csrc/ga_gemm_impl.h"]   # rebuild on change
FAST_MATH = ["-fno-math-errno", "-fno-trapping-math"]
GLUE_CFLAGS = ["-O2", "-g0", "-Wno-unreachable-code"] + FAST_MATH
KERNEL_CFLAGS = ["-O3", "-g0", "-fPIC"] + FAST_MATH


class parallel_build_ext(build_ext):
    """build_ext with one compiler job per core unless -j says otherwise; builds the kernel
    library first (plain build_ext, as in an in-place or editable build, does not)."""

    def finalize_options(self):
        super().finalize_options()
        if not self.parallel:
            self.parallel = os.cpu_count() or 1

    def run(self):
        self.run_command("build_clib")
        super().run()


extensions = [
    Extension(
        f"graphad.{name}",
        sources=[f"graphad/{name}.pyx"],
        depends=C_HEADERS if name == "_kernels" else [],
        include_dirs=[np.get_include(), "csrc"],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=GLUE_CFLAGS,
    )
    for name in MODULES
]

setup(
    libraries=[("ga_csrc", {"sources": C_SOURCES, "depends": C_HEADERS,
                            "include_dirs": ["csrc"], "cflags": KERNEL_CFLAGS})],
    cmdclass={"build_ext": parallel_build_ext},
    ext_modules=cythonize(
        extensions,
        language_level=3,
        nthreads=os.cpu_count() or 1,
        compiler_directives={"embedsignature": True},
    ),
)
