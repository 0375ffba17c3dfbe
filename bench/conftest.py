"""pytest-benchmark entry points of the suite (bench/test_bench.py); a source checkout works
without installing."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
