"""Builds graphad's Cython extensions and the C kernels in csrc/ (optimisation on)."""
import os

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

MODULES = ["_kernels", "_core", "_prims", "_ops", "_compile"]
C_SOURCES = ["csrc/ga_kernels.c", "csrc/ga_gemm.c"]
C_HEADERS = ["csrc/ga_kernels.h", "csrc/ga_gemm.h", "csrc/ga_gemm_impl.h"]   # rebuild on change
CFLAGS = ["-O3", "-fno-math-errno", "-fno-trapping-math", "-Wno-unreachable-code"]

extensions = [
    Extension(
        f"graphad.{name}",
        sources=[f"graphad/{name}.pyx"] + (C_SOURCES if name == "_kernels" else []),
        depends=C_HEADERS if name == "_kernels" else [],
        include_dirs=[np.get_include(), "csrc"],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=CFLAGS,
    )
    for name in MODULES
]

setup(
    ext_modules=cythonize(
        extensions,
        language_level=3,
        nthreads=os.cpu_count() or 1,
        compiler_directives={"embedsignature": True},
    ),
)
