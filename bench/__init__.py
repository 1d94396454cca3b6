"""Benchmarks: codex-proxy against a direct baseline and against its peers, in one run.

``python -m bench --quick`` for a short development run; ``python -m bench`` for the full one.
"""
