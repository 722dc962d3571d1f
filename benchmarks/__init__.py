"""Quality, speed and memory benchmarks for stackrig (not part of the installed package).

Run from the repository root, e.g. ``python -m benchmarks.run --quick``.
"""
