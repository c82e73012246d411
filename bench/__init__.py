"""``make bench``: load benchmarks of the webhook hot path, as ratios to a bare aiohttp handler."""
