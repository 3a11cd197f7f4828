"""The scratch folder's total size, watched while a job runs: the disk quota no rlimit gives.

RLIMIT_FSIZE caps one file; a notebook writing many small files gets around it.
Filesystem quotas need root, a quota-enabled filesystem and a project id per
job, which most hosts (and containers) lack. So the runner measures the scratch
tree itself, from the host, on a clock that backs off when the tree is large:
the time spent walking stays under about a tenth of the run. A job is stopped
within one poll of crossing the quota, so it may overshoot by what it writes
in that time.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

_MIN_INTERVAL = 0.5
_COST_SHARE = 10  # wait at least this many times as long as the last walk took


def used_bytes(root: Path) -> int:
    """Bytes allocated to everything under `root` (blocks, not apparent sizes; links are not followed)."""
    total = 0
    stack = [str(root)]
    while stack:
        try:
            entries = os.scandir(stack.pop())
        except OSError:  # removed while we walked, or unreadable: the job's business
            continue
        with entries:
            for entry in entries:
                try:
                    info = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                total += info.st_blocks * 512
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
    return total


class DiskWatch:
    """Polls a folder's size; `exceeded()` says whether it has gone over `limit` bytes since the last poll."""

    def __init__(self, root: Path, limit: int):
        self.root, self.limit = root, limit
        self.peak = 0
        self._next = 0.0

    def exceeded(self) -> bool:
        now = time.monotonic()
        if now < self._next:
            return False
        used = used_bytes(self.root)
        spent = time.monotonic() - now
        self.peak = max(self.peak, used)
        self._next = time.monotonic() + max(_MIN_INTERVAL, _COST_SHARE * spent)
        return used > self.limit
