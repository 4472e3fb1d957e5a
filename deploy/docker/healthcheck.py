"""Container healthcheck for the application image: GET a URL, exit 0 on HTTP 2xx, 1 otherwise.

The URL is HEALTHCHECK_URL, else the process's /health on SALES_AGENT_HEALTH_PORT. Standard library
only (the image has no curl/wget) and a short timeout, so a hung server reads as unhealthy.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request


def probe_url() -> str:
    return os.environ.get("HEALTHCHECK_URL") or (
        f"http://127.0.0.1:{os.environ.get('SALES_AGENT_HEALTH_PORT', '8080')}/health"
    )


def main() -> int:
    url = probe_url()
    try:
        with urllib.request.urlopen(url, timeout=4) as response:
            status = response.status
    except (urllib.error.URLError, OSError) as exc:
        print(f"unhealthy: {url}: {exc}", file=sys.stderr)
        return 1
    if 200 <= status < 300:
        return 0
    print(f"unhealthy: {url}: HTTP {status}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
