"""Docker HEALTHCHECK: exit 0 when the node's API answers GET /health with 200."""

import sys
import urllib.request

try:
    with urllib.request.urlopen("http://127.0.0.1:8100/health", timeout=2) as response:
        sys.exit(0 if response.status == 200 else 1)
except Exception as exc:  # any failure (refused, timeout, HTTP error) means unhealthy
    print(f"lendchain health check failed: {exc}", file=sys.stderr)
    sys.exit(1)
