"""The scratch folder's disk quota, in bytes and in files: the limit no rlimit gives.

RLIMIT_FSIZE caps one file; a notebook writing many files, or files it has
deleted while holding them open, gets around it. Filesystem quotas need root,
a quota-enabled filesystem and a project id per job, which most hosts (and
containers) lack. So `disk_quota` gives the job's scratch folder a file
system of its own for the run (grader.sandbox.scratchfs: a tmpfs with
`size=` and `nr_inodes=`), whose limits the kernel enforces, and falls back
where that cannot be had (no mount or user namespaces) to `DiskWatch`: the
scratch tree walked from the host, on a clock that backs off when the tree is
large (the time spent walking stays under about a tenth of the run). The walk
is a watch, not a limit: it cannot see files deleted while still open, and a
job may overshoot by what it writes between two walks. `described` says which
one a run got.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Union

from grader.sandbox.scratchfs import ScratchFS, Usage
from grader.settings import show_size

log = logging.getLogger(__name__)

_MIN_INTERVAL = 0.5
_COST_SHARE = 10  # wait at least this many times as long as the last walk took


def used(root: Path) -> Usage:
    """What everything under `root` takes: blocks allocated (not apparent sizes) and entries; links not followed."""
    total = files = 0
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
                files += 1
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
    return Usage(total, files)


class DiskWatch:
    """Polls a folder's size; `exceeded()` says whether it has gone over `size` bytes or `files` entries since the
    last poll. The fallback where the folder cannot have a file system of its own (`why`)."""

    def __init__(self, root: Path, size: int, files: int, *, why: str = ""):
        self.root, self.size, self.files, self.why = root, size, files, why
        self.peak = Usage(0, 0)
        self._next = 0.0

    def enter(self) -> None:
        """Nothing to join: the job writes to the folder on disk."""

    def exceeded(self, *, final: bool = False) -> bool:
        """`final`: the job has ended, so walk now whatever the clock says (what it left counts too)."""
        now = time.monotonic()
        if now < self._next and not final:
            return False
        usage = used(self.root)
        spent = time.monotonic() - now
        self.peak = Usage(max(self.peak.bytes, usage.bytes), max(self.peak.files, usage.files))
        self._next = time.monotonic() + max(_MIN_INTERVAL, _COST_SHARE * spent)
        return usage.bytes > self.size or usage.files > self.files


Quota = Union[ScratchFS, DiskWatch]


def described(quota: Quota) -> str:
    """What `limits_used` says about the disk quota a run got."""
    if isinstance(quota, DiskWatch):
        return (f"disk: watched, not enforced ({quota.why or 'no file system of its own'}): the scratch folder is "
                f"walked every {_MIN_INTERVAL:g} s or more and the job stopped past {show_size(quota.size)} or "
                f"{quota.files:,} files; the walk cannot see files deleted while still open, and a job may overshoot "
                "by what it writes between two walks")
    return (f"disk: a file system of its own, {show_size(quota.size)} and {quota.files:,} files (the kernel refuses "
            "writes past either)")


@contextmanager
def disk_quota(folder: Path, *, size: int, files: int) -> Iterator[Quota]:
    """The quota of one run in `folder`: its own file system while the block runs (what the job left is back in
    the folder when it ends), or the watch where none can be had."""
    try:
        fs = ScratchFS(folder, size=size, files=files)
    except OSError as exc:
        why = f"no file system of its own: {exc.strerror or exc}"
        log.warning("the disk quota of %s is watched, not enforced (%s)", folder, why)
        yield DiskWatch(folder, size, files, why=why)
        return
    try:
        yield fs
    finally:
        fs.close()
