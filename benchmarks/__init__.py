"""Benchmark scripts, each run as ``python benchmarks/NAME.py`` and printing its tables.

A package so that the scripts share :mod:`benchmarks.harness` and :mod:`benchmarks.bench_run`
under one module name each (tests import :mod:`benchmarks.hostile_student` too); a script run
by path puts the repository root on ``sys.path`` first.
"""
