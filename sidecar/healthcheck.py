"""``python -m sidecar.healthcheck``: exit 0 if this container's sidecar answers ``/healthz``.

For Docker's ``HEALTHCHECK`` (the image has no curl): it asks 127.0.0.1 on ``SIDECAR_PORT``.
"""

from __future__ import annotations

import sys
import urllib.request

from sidecar.settings import load_settings


def main() -> int:
    port = load_settings().port
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=3) as resp:
            return 0 if resp.status == 200 else 1
    except OSError as exc:
        print(f"healthcheck failed: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
