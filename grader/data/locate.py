"""Where the MNIST files are: the names and layouts a folder may use, and which folder to use.

A folder holds MNIST when it has the four IDX files, each plain or gzipped,
either directly (flat) or under ``MNIST/raw/`` (the layout torchvision's
``datasets.MNIST(root)`` reads and writes).

Which folder: ``--data DIR`` if given, else ``$GRADER_DATA`` if set, else the
user cache folder. Only the first of these that is given is used: a folder
the user named that lacks the files is an error, never silently replaced by
another copy, while the cache is where `grade data fetch` downloads to.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from grader.data.idx import MnistSplit, read_split, write_idx
from grader.errors import GraderError

SPLITS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
FILE_NAMES = tuple(name for pair in SPLITS.values() for name in pair)
TORCHVISION_RAW = Path("MNIST", "raw")
ENV_VAR = "GRADER_DATA"
CACHE = "cache"

_HOW_TO_GET = ("pass --data DIR (a folder with the four MNIST IDX files, plain or .gz, flat or under MNIST/raw/), "
               "or run `grade data fetch` to download them into the cache")


@dataclass(frozen=True)
class DataPlace:
    """The folder to look in, and what chose it: "--data", "$GRADER_DATA" or "cache"."""

    path: Path
    source: str

    @property
    def named_by_user(self) -> bool:
        return self.source != CACHE


def cache_dir(environ: Mapping[str, str] = os.environ) -> Path:
    """The per-user download folder: $XDG_CACHE_HOME/mnist-grader/mnist, else ~/.cache/mnist-grader/mnist."""
    base = environ.get("XDG_CACHE_HOME", "")
    # The XDG spec says to ignore a relative (or empty) value.
    root = Path(base) if os.path.isabs(base) else Path.home() / ".cache"
    return root / "mnist-grader" / "mnist"


def data_place(data: str | os.PathLike | None = None, environ: Mapping[str, str] = os.environ) -> DataPlace:
    """The folder to use, in order: the --data option, $GRADER_DATA, the cache."""
    if data is not None:
        return DataPlace(Path(data).expanduser(), "--data")
    if environ.get(ENV_VAR):
        return DataPlace(Path(environ[ENV_VAR]).expanduser(), f"${ENV_VAR}")
    return DataPlace(cache_dir(environ), CACHE)


def find_mnist(data: str | os.PathLike | None = None, environ: Mapping[str, str] = os.environ) -> Path | None:
    """The folder that holds the four files, or None when the cache lacks them (then fetch).

    A folder the user named (--data, $GRADER_DATA) without the files raises GraderError.
    """
    place = data_place(data, environ)
    folder = mnist_folder(place.path)
    if folder is None and place.named_by_user:
        raise GraderError(f"the folder {place.source} names has no MNIST: {_missing_text(place.path, FILE_NAMES)}",
                          where=str(place.path),
                          fix=f"point {place.source} at a folder with the four MNIST IDX files (plain or .gz, flat "
                              f"or under MNIST/raw/), or leave it out to use the cache that `grade data fetch` fills")
    return folder


def mnist_folder(root: Path) -> Path | None:
    """root or root/MNIST/raw, whichever holds all four files; None if neither does."""
    for folder in (root, root / TORCHVISION_RAW):
        if all(_file(folder, name) for name in FILE_NAMES):
            return folder
    return None


def split_files(root: Path, split: str) -> tuple[Path, Path]:
    """The (images, labels) files of a split under root, flat or torchvision layout, plain or .gz."""
    if split not in SPLITS:
        raise GraderError(f"unknown split {split!r}", fix=f"use one of: {', '.join(SPLITS)}")
    names = SPLITS[split]
    for folder in (root, root / TORCHVISION_RAW):
        images, labels = (_file(folder, name) for name in names)
        if images and labels:
            return images, labels
    raise GraderError(_missing_text(root, names), where=str(root), fix=_HOW_TO_GET)


def load_mnist(root: str | os.PathLike, split: str = "test") -> MnistSplit:
    """The validated images (N, 28, 28) and labels (N,) of one split found under root."""
    return read_split(*split_files(Path(root), split))


def stage_torchvision_layout(src_root: str | os.PathLike, dest_root: str | os.PathLike) -> Path:
    """Write the four files, validated and uncompressed, to dest_root/MNIST/raw/; returns that folder.

    `torchvision.datasets.MNIST(dest_root, download=False)` then finds them
    without trying to download (it checks for the uncompressed names).
    """
    raw = Path(dest_root) / TORCHVISION_RAW
    raw.mkdir(parents=True, exist_ok=True)
    for split, (images_name, labels_name) in SPLITS.items():
        data = load_mnist(src_root, split)
        write_idx(raw / images_name, data.images)
        write_idx(raw / labels_name, data.labels)
    return raw


def _file(folder: Path, name: str) -> Path | None:
    # Plain first: it reads faster, and torchvision leaves both forms side by side.
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _missing_text(root: Path, names: tuple[str, ...]) -> str:
    # Report against whichever layout is closer to complete, so the list is what the user must add.
    folders = (root, root / TORCHVISION_RAW)
    best = max(folders, key=lambda folder: sum(_file(folder, name) is not None for name in names))
    missing = [f"{name}[.gz]" for name in names if _file(best, name) is None]
    inside = "" if best == root else f" in {TORCHVISION_RAW}/"
    return f"missing {', '.join(missing)}{inside}"
