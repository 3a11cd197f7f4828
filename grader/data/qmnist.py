"""Digits no notebook can have seen: the 50,000 extra test digits of QMNIST (Yadav and Bottou, 2019).

QMNIST's test set has 60,000 digits: the first 10,000 are MNIST's test set, reconstructed; the other 50,000
come from the same NIST writers and were never part of MNIST. A model whose accuracy on MNIST's test set
is far above its accuracy on those 50,000 learned MNIST's test set rather than digits.

Opt-in (the rubric's `unseen: true`, or `--unseen`): the two files (about 10 MB) are downloaded on first use
into the cache, beside MNIST, and checked against the md5 digests torchvision's QMNIST dataset pins
(`torchvision.datasets.QMNIST.resources["test"]`). Labels come as IDX type 0x0C (big-endian int32), one
row of 8 numbers per digit; column 0 is the digit.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import struct
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from grader.data.fetch import Progress, SourceFailed, _check_md5, _download, _quiet
from grader.data.idx import MnistSplit, read_images, read_raw
from grader.data.locate import cache_dir
from grader.errors import GraderError

BASE_URL = "https://raw.githubusercontent.com/facebookresearch/qmnist/master/"
IMAGES = "qmnist-test-images-idx3-ubyte.gz"
LABELS = "qmnist-test-labels-idx2-int.gz"
# torchvision.datasets.QMNIST.resources["test"]: md5 of each .gz as the repository serves it.
MD5 = {IMAGES: "1394631089c404de565df7b7aeaf9412", LABELS: "5b5b05890a5e13444e108efe57b788aa"}
MNIST_PART = 10_000  # the first rows of QMNIST's test set are MNIST's test set
_INT_LABELS = 0x00000C02  # int32, 2 dimensions (count, 8)


@dataclass(frozen=True)
class Qmnist:
    """Where QMNIST comes from and what its files must hash to (tests point these at generated files)."""

    base_url: str = field(default_factory=lambda: BASE_URL)
    md5: Mapping[str, str] = field(default_factory=lambda: MD5)


def qmnist_dir() -> Path:
    """$XDG_CACHE_HOME/mnist-grader/qmnist (beside the MNIST cache)."""
    return cache_dir().parent / "qmnist"


def read_labels_int(path: Path) -> np.ndarray:
    """Column 0 (the digit) of a QMNIST idx2-int label file, as uint8."""
    data = read_raw(path)
    if len(data) < 12 or struct.unpack(">I", data[:4])[0] != _INT_LABELS:
        raise GraderError("not a QMNIST label file (IDX int32, 2 dimensions)", where=str(path),
                          fix=f"delete it: the next run with unseen digits downloads {LABELS} again")
    rows, columns = struct.unpack(">II", data[4:12])
    if len(data) != 12 + 4 * rows * columns or columns < 1:
        raise GraderError(f"{len(data) - 12} bytes of labels for {rows}x{columns} int32 values", where=str(path),
                          fix=f"delete it: the next run with unseen digits downloads {LABELS} again")
    table = np.frombuffer(data, dtype=">i4", offset=12).reshape(rows, columns)
    if not ((table[:, 0] >= 0) & (table[:, 0] <= 9)).all():
        raise GraderError("labels outside 0-9", where=str(path), fix=f"delete it and download {LABELS} again")
    return table[:, 0].astype(np.uint8)


def fetch_qmnist(dest: Path, *, source: Optional[Qmnist] = None, progress: Optional[Progress] = None) -> Path:
    """Both files in dest, downloaded (once) and md5-checked; GraderError saying what to do when that fails."""
    source = source or Qmnist()
    if all(_intact(dest / name, source.md5[name]) for name in (IMAGES, LABELS)):
        return dest
    try:
        dest.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=dest, prefix=".fetch-") as tmp:
            for name in (IMAGES, LABELS):
                target = Path(tmp) / name
                _download(source.base_url + name, target, progress or _quiet)
                _check_md5(target.read_bytes(), source.md5[name], name)
            for name in (IMAGES, LABELS):  # under their final names only once both are verified
                os.replace(Path(tmp) / name, dest / name)
    except (OSError, http.client.HTTPException, SourceFailed) as err:
        raise GraderError(f"could not download QMNIST's test digits from {source.base_url}: {err}", where=str(dest),
                          fix=f"copy {IMAGES} and {LABELS} (github.com/facebookresearch/qmnist) into {dest}, or "
                              "grade without unseen digits (drop --unseen / the rubric's unseen: true)") from None
    return dest


def load_unseen(folder: Path, source: Optional[Qmnist] = None) -> MnistSplit:
    """QMNIST's test digits after the first 10,000 (those are MNIST's): images (N, 28, 28) and labels (N,)."""
    source = source or Qmnist()
    for name in (IMAGES, LABELS):
        if not _intact(folder / name, source.md5[name]):
            raise GraderError(f"{name} is missing or not the file QMNIST publishes (md5 differs)", where=str(folder),
                              fix="delete it: the next run with unseen digits downloads it again")
    images, labels = read_images(folder / IMAGES), read_labels_int(folder / LABELS)
    if len(images) != len(labels):
        raise GraderError(f"{len(images)} images but {len(labels)} labels", where=str(folder),
                          fix=f"delete {IMAGES} and {LABELS}: the next run downloads both again")
    if len(images) <= MNIST_PART:
        raise GraderError(f"{len(images)} digits: none beyond MNIST's first {MNIST_PART:,}", where=str(folder / IMAGES),
                          fix="delete it: the next run with unseen digits downloads QMNIST's test set again")
    return MnistSplit(images[MNIST_PART:], labels[MNIST_PART:])


def ensure_unseen(source: Optional[Qmnist] = None, progress: Optional[Progress] = None) -> MnistSplit:
    """The unseen digits from the cache, downloaded into it on first use."""
    return load_unseen(fetch_qmnist(qmnist_dir(), source=source, progress=progress), source)


def _intact(path: Path, md5: str) -> bool:
    try:
        return hashlib.md5(path.read_bytes()).hexdigest() == md5
    except OSError:
        return False
