#!/bin/sh
# graphad's own GEMM against OpenBLAS (SciPy's and NumPy's wheels), MKL and BLIS, in C, one
# thread (README Performance).  MKL and BLIS come from PyPI, installed outside the project:
#   python -m pip install --no-deps --prefix /work/blaslibs/prefix mkl tbb intel-openmp umf tcmlib blis
# usage: sh bench/gemm_vendors/run.sh [SHAPEFILE]   (from the repository root; TSV on stdout)
set -e
HERE=$(dirname "$0"); PY=${PY:-python}; PREFIX=${PREFIX:-/work/blaslibs/prefix}
SITE=$($PY -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
gcc -fwrapv -O3 -falign-functions=64 -falign-loops=32 -fno-math-errno -fno-trapping-math \
    -Icsrc -o /tmp/gemm_vendors "$HERE/gemm_vendors.c" csrc/ga_gemm.c csrc/ga_kernels.c -ldl -lm \
    -Wl,--no-as-needed -lpython3.11     # the blis wheel's extension needs libpython's symbols
gcc -O2 -shared -fPIC -o /tmp/blis_skx.so "$HERE/blis_skx.c"
unset OPENBLAS_CORETYPE OPENBLAS_L2_SIZE
export OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 BLIS_NUM_THREADS=1 OMP_NUM_THREADS=1
export OB_SCIPY=$(ls "$SITE"/scipy.libs/libscipy_openblas-*.so) OB_NUMPY=$(ls "$SITE"/numpy.libs/libscipy_openblas64_-*.so)
export MKL_RT=$PREFIX/lib/libmkl_rt.so.3 LD_LIBRARY_PATH=$PREFIX/lib
export BLIS_SO=$(ls "$PREFIX"/lib/python3*/site-packages/blis/cy.cpython-*.so)
# BLIS 0.7 picks its 'haswell' config where the CPU's brand string hides the FMA-unit count;
# the first run forces 'skx' (blis_skx.so), the second measures what it picks by itself
LD_PRELOAD=/tmp/blis_skx.so /tmp/gemm_vendors "${1:-$HERE/shapes.txt}"
ONLY=blis /tmp/gemm_vendors "${1:-$HERE/shapes.txt}" | sed 1d | sed 's/\tblis\t/\tblis_default\t/'
