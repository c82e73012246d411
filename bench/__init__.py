"""Benchmarks: same-run ratios against an in-process or bare-handler reference."""
