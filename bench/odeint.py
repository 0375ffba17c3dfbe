"""Thin wrapper kept for old habits: `python bench/odeint.py [--quick] [--out DIR] ...` runs
`python -m graphad bench --only odeint`
(the suite lives in graphad/bench/)."""
import os
import sys

if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from graphad.__main__ import main
    sys.exit(main(["bench", "--only", 'odeint'] + sys.argv[1:]))
