"""MNIST where student notebooks look for it, read-only: torchvision layout under every root they name.

Staged once per machine (uncompressed, as `datasets.MNIST(root, download=True)` finds it
and then skips the download), and bound into each sandbox at `<workdir>/data`,
`<workdir>/../data` and every literal root the notebook passes to `datasets.MNIST(...)`.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Optional

import numpy as np

from grader.data.fetch import ensure_mnist
from grader.data.idx import MnistSplit
from grader.data.locate import cache_dir, load_mnist, stage_torchvision_layout
from grader.data.qmnist import ensure_unseen, qmnist_dir

TEST_IMAGES = "test_images.npy"  # the 10,000 test images, no labels: for probing and clean evaluation
UNSEEN_IMAGES = "unseen_images.npy"  # QMNIST's 50,000 digits beyond MNIST, no labels: for the clean evaluation only


def staged_root(source: Path) -> Path:
    """A folder with MNIST/raw/ (uncompressed) and the test images as .npy, made once per data source."""
    key = hashlib.sha256(str(source.resolve()).encode()).hexdigest()[:16]
    root = cache_dir().parent / "staged" / key
    marker = root / ".complete"
    if marker.exists():
        return root
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as lock:  # parallel jobs (threads or processes) stage it once
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not marker.exists():
            stage_torchvision_layout(source, root)
            np.save(root / TEST_IMAGES, load_mnist(source, "test").images)
            marker.write_text(str(source.resolve()))
    return root


@dataclass(frozen=True)
class TestData:
    """MNIST located, staged and its test split loaded: done once per class, shared by every submission."""

    folder: Path  # where the IDX files are
    staged: Path  # the torchvision layout and the label-free test images, for the sandboxes
    test: MnistSplit  # images and labels: labels stay on the host
    unseen: Optional[MnistSplit] = None  # QMNIST's digits beyond MNIST (grader.data.qmnist), when asked for
    unseen_images: Optional[Path] = None  # their images as .npy, outside `staged`: no notebook's sandbox sees them

    @property
    def labels(self) -> np.ndarray:
        return self.test.labels


def prepare_test_data(data: Optional[str] = None, unseen: bool = False) -> TestData:
    """Find MNIST (--data, $GRADER_DATA, the cache; downloading on first need), stage it, load the test split.
    `unseen`: also QMNIST's 50,000 digits beyond MNIST (downloaded into the cache on first use)."""
    folder = ensure_mnist(data)
    test = TestData(folder, staged_root(folder), load_mnist(folder, "test"))
    if not unseen:
        return test
    split = ensure_unseen()
    images = qmnist_dir() / UNSEEN_IMAGES
    if not images.exists():
        with tempfile.NamedTemporaryFile(dir=images.parent, suffix=".npy", delete=False) as tmp:
            np.save(tmp, split.images)
        os.replace(tmp.name, images)  # parallel graders never read half a file
    if images.stat().st_mode & 0o044 != 0o044:  # the temporary file's 0600 (or an older grader's): the sandbox's
        images.chmod(0o644)  # unprivileged uid reads it through a read-only bind (grader.sandbox.identity)
    return replace(test, unseen=split, unseen_images=images)


def data_binds(staged: Path, workdir: Path, roots: tuple[str, ...],
               base: Path | None = None) -> tuple[tuple[Path, Path], ...]:
    """(host, inside) read-only binds: the staged root at ./data, ../data and every root the notebook names, relative
    to `base` (the notebook's folder: the kernel's working directory; default `workdir`, the scratch's root)."""
    base = base or workdir
    wanted = {workdir / "data", workdir.parent / "data", base / "data", base.parent / "data"}
    for root in roots:
        path = PurePosixPath(root)
        inside = Path(os.path.normpath(path if path.is_absolute() else base / path))
        if (inside in (workdir, base) or workdir.is_relative_to(inside) or base.is_relative_to(inside)
                or inside.parts[:2] in (("/", "proc"), ("/", "dev"))):
            continue  # a root that would hide the working directory or a system folder stays unstaged
        wanted.add(inside)
    # torchvision also accepts root=<folder holding MNIST/raw> directly, which is what `staged` is.
    return tuple((staged, inside) for inside in sorted(wanted))
