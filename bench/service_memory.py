"""The memory of `grade serve` (its RSS) before, at the peak and after many concurrent large bodies.

    python bench/service_memory.py                 # 100 bodies of 16 MB at once, unsigned, then forged
    python bench/service_memory.py --count 200 --size 16

Everything stays on 127.0.0.1. Unsigned bodies are refused from their headers, before the body is read;
forged ones (a fresh, well-formed, wrong signature) pass the headers and are read --max-uploads at a time,
the rest refused with 503. The figures are printed as a Markdown table.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from grader.service.signing import SIGNATURE, TIMESTAMP  # noqa: E402
from tests.fixtures.service.flood import MB, measure  # noqa: E402
from tests.fixtures.service.harness import start_server  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=100, help="bodies sent at once (default: 100)")
    parser.add_argument("--size", type=int, default=16, help="MB per body (default: 16, the default --max-body)")
    args = parser.parse_args()
    kinds = {"unsigned": {"Content-Type": "application/json"},
             "forged signature": {"Content-Type": "application/json", SIGNATURE: "sha256=" + "0" * 64,
                                  TIMESTAMP: str(int(time.time())), "X-Grader-Delivery": uuid.uuid4().hex}}
    print(f"| {args.count} x {args.size} MB at once | RSS before | peak | after | answers |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as scratch, start_server(Path(scratch)) as server:
        server.http.get("/v1/health")
        for kind, headers in kinds.items():
            before, peak, after, statuses = measure(server, headers, args.count, args.size * MB)
            answers = ", ".join(f"{n} x {status}" for status, n in sorted(Counter(statuses).items()))
            print(f"| {kind} | {before:.0f} MB | {peak:.0f} MB (+{peak - before:.0f}) | {after:.0f} MB "
                  f"(+{after - before:.0f}) | {answers} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
