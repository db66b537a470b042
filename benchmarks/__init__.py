"""The project's benchmark scripts (run them as ``python benchmarks/<name>.py``).

A regular package on purpose: opacus 1.6 installs a top-level ``benchmarks`` package of its own into
site-packages, and a regular package anywhere on ``sys.path`` beats a namespace package, so without
this file ``from benchmarks import harness`` (the tests) would import Opacus' folder instead.
"""
