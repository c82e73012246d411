"""Benchmarks: same-run ratios against a bare aiohttp handler or an in-process reference (``make bench``)."""
