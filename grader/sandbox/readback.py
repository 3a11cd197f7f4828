"""The one way the host reads what a sandbox wrote: fixed names in a folder opened once, regular files only,
each kind of file capped.

Whatever a sandbox leaves is the submission talking, in its content and in its form: a record replaced by a FIFO
blocks a plain `open()` forever, a symlink to /dev/zero makes a plain `read()` grow without bound, and a path taken
from a record reaches anywhere on the host. So the host opens the folder once without following a link
(O_DIRECTORY | O_NOFOLLOW), every file by a plain name relative to it (O_NOFOLLOW | O_NONBLOCK: a FIFO opens at
once and is refused), requires a regular file by `fstat`, and reads at most its kind's cap plus one byte. What is
wrong is a `ReadbackError` whose message names the file and what it is, and becomes that submission's verdict.
`tests/test_readback.py` fails when another module reads a sandbox's folder directly.
"""

from __future__ import annotations

import enum
import errno
import io
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Optional

import numpy as np
from numpy.lib import format as npy_format


class Kind(enum.Enum):
    """What a file is, and the most the host reads of it (far above what an honest run writes)."""

    RECORD = ("record", 4 << 20)  # run.json, harness.json: cell errors with tracebacks, counters, the model
    LOG = ("log", 64 << 10)  # a process's output: only its tail is read
    NOTEBOOK = ("notebook", 64 << 20)  # executed.ipynb: the cells with what they printed (--max-output) and plots
    MODEL = ("model", 1 << 30)  # model.pt2 / .ts / .keras: as large as one file a notebook may write by default
    RESULT = ("evaluation result", 16 << 20)  # eval.json: the clean evaluation's record of the exported graph
    PREDICTIONS = ("predictions", 4 << 20)  # one label per digit (QMNIST's 50,000 beyond MNIST's, as int64)

    @property
    def label(self) -> str:
        return self.value[0]

    @property
    def cap(self) -> int:
        return self.value[1]


_WHAT = {stat.S_IFIFO: "a FIFO", stat.S_IFSOCK: "a socket", stat.S_IFCHR: "a character device",
         stat.S_IFBLK: "a block device", stat.S_IFDIR: "a folder", stat.S_IFLNK: "a symbolic link"}
_CHUNK = 1 << 20


class ReadbackError(Exception):
    """A file the host will not read: `subject` ("harness.json in .grader") and what is wrong with it."""

    def __init__(self, subject: str, problem: str):
        self.subject, self.problem = subject, problem
        super().__init__(f"{subject} {problem}")


class Missing(ReadbackError):
    def __init__(self, subject: str):
        super().__init__(subject, "is missing")


class Symlink(ReadbackError):
    def __init__(self, subject: str):
        super().__init__(subject, "is a symbolic link (the grader follows no link a submission made)")


class NotRegular(ReadbackError):
    def __init__(self, subject: str, what: str, expected: str = "a regular file"):
        super().__init__(subject, f"is {what}, not {expected}")


class TooBig(ReadbackError):
    def __init__(self, subject: str, kind: Kind):
        super().__init__(subject, f"is larger than the {kind.cap / (1 << 20):g} MiB the grader reads of "
                                  f"{'an' if kind.label[0] in 'aeiou' else 'a'} {kind.label} file")


class NotAName(ReadbackError):
    def __init__(self, subject: str):
        super().__init__(subject, "is not a file name (the grader reads only fixed names in a sandbox's folder, "
                                  "never a path)")


class Folder:
    """A folder a sandbox wrote, opened once without following a link; its files are read by name relative to it.

    `where` is how messages show the folder (".grader", the notebook's output folder). Use it as a context manager;
    a folder that is a link, missing, or not a folder raises `ReadbackError` here."""

    def __init__(self, path: Path, where: Optional[str] = None):
        path = Path(path)
        self.where = where or path.name
        try:
            self._fd: Optional[int] = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as exc:
            raise _refusal(exc, self.where, lambda: os.lstat(path), expected="a folder") from None

    def __enter__(self) -> Folder:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def read(self, name: str, kind: Kind) -> bytes:
        """The whole file, refused over `kind`'s cap (checked by fstat, and while reading: at most cap + 1 bytes)."""
        fd = self._open(name, kind)
        try:
            data = _read_at_most(fd, kind.cap + 1)
        finally:
            os.close(fd)
        if len(data) > kind.cap:
            raise TooBig(self._subject(name), kind)
        return data

    def text(self, name: str, kind: Kind) -> str:
        return self.read(name, kind).decode("utf-8", "replace")

    def labels(self, name: str) -> np.ndarray:
        """A .npy file of labels, parsed from the bytes read here (`labels_from_npy`)."""
        return labels_from_npy(self.read(name, Kind.PREDICTIONS))

    def tail(self, name: str, kind: Kind = Kind.LOG) -> str:
        """The last `kind.cap` bytes of a file (a process's output, however long it grew)."""
        fd = self._open(name, kind, capped=False)
        try:
            os.lseek(fd, max(0, os.fstat(fd).st_size - kind.cap), os.SEEK_SET)
            data = _read_at_most(fd, kind.cap)
        finally:
            os.close(fd)
        return data.decode("utf-8", "replace")

    def descriptor(self, name: str, kind: Kind) -> int:
        """A read-only descriptor of the file, checked as `read` checks it (a regular file within the cap), to hand
        to another process; the caller closes it."""
        return self._open(name, kind)

    def copy(self, name: str, kind: Kind, target: Path) -> int:
        """Copy the file to `target`, a new file of ours (never an existing one, never through a link); returns the
        bytes copied. Over the cap, the partial copy is removed and TooBig raised."""
        fd = self._open(name, kind)
        try:
            out = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
            copied = 0
            try:
                while chunk := os.read(fd, min(_CHUNK, kind.cap + 1 - copied)):
                    copied += len(chunk)
                    if copied > kind.cap:
                        break
                    os.write(out, chunk)  # a regular file of ours: the write is whole
            finally:
                os.close(out)
        finally:
            os.close(fd)
        if copied > kind.cap:
            os.unlink(target)
            raise TooBig(self._subject(name), kind)
        return copied

    def _subject(self, name: str) -> str:
        return f"{name} in {self.where}"

    def _open(self, name: str, kind: Kind, capped: bool = True) -> int:
        if self._fd is None:
            raise ValueError(f"the folder {self.where} is closed")
        if not name or name in (".", "..") or "/" in name or "\0" in name:
            raise NotAName(self._subject(repr(name)))
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC,
                         dir_fd=self._fd)
        except OSError as exc:
            raise _refusal(exc, self._subject(name),
                           lambda: os.stat(name, dir_fd=self._fd, follow_symlinks=False)) from None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise NotRegular(self._subject(name), _what(info.st_mode))
            if capped and info.st_size > kind.cap:
                raise TooBig(self._subject(name), kind)
        except BaseException:
            os.close(fd)
            raise
        return fd


def _what(mode: int) -> str:
    return _WHAT.get(stat.S_IFMT(mode), "an unknown kind of file")


def _refusal(exc: OSError, subject: str, mode_of: Callable[[], os.stat_result],
             expected: str = "a regular file") -> ReadbackError:
    """The typed error for an open that failed: a link (ELOOP under O_NOFOLLOW), a missing file, or what it is."""
    if exc.errno == errno.ENOENT:
        return Missing(subject)
    if exc.errno == errno.ELOOP:
        return Symlink(subject)
    try:
        mode = mode_of().st_mode
    except OSError:
        return ReadbackError(subject, f"cannot be opened ({exc.strerror})")
    if stat.S_ISLNK(mode):
        return Symlink(subject)
    return NotRegular(subject, _what(mode), expected)


def _read_at_most(fd: int, limit: int) -> bytes:
    parts, got = [], 0
    while got < limit and (chunk := os.read(fd, min(_CHUNK, limit - got))):
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


def labels_from_npy(data: bytes) -> np.ndarray:
    """One row of integer labels from the bytes of a .npy file: nothing is unpickled, and the header's shape must
    match the bytes that follow (numpy would allocate whatever shape a header claims); ValueError otherwise."""
    stream = io.BytesIO(data)
    version = npy_format.read_magic(stream)
    read_header = {(1, 0): npy_format.read_array_header_1_0, (2, 0): npy_format.read_array_header_2_0}.get(version)
    if read_header is None:
        raise ValueError(f".npy format version {version} is not read here")
    shape, fortran, dtype = read_header(stream)
    if dtype.hasobject or dtype.kind not in "iu" or len(shape) != 1:
        raise ValueError(f"labels must be one row of integers, not {dtype} of shape {shape}")
    body = data[stream.tell():]
    if len(body) != shape[0] * dtype.itemsize:
        raise ValueError(f"the header says {shape[0]} labels of {dtype} and {len(body)} bytes follow it")
    return np.frombuffer(body, dtype)
