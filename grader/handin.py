"""The hand-in: a notebook and the files beside and below it, staged with it into the sandbox.

Course repositories put the model and the training loop in `.py` files the notebook imports
(`from model import Net`, `from utils import train, test`). The hand-in is the folder those files
live in: a student's folder in a class, an unpacked zip, a repository tree at the graded commit,
or the folder `grade check` was pointed at. `collect` lists what is staged, with hashes, and what is
left out and why; `select` is the same rules and limits applied to a listing of paths and sizes (a git
tree's, a zip's) before anything is written, so a file that would be left out is never unpacked:

- data files (MNIST in any form) never reach the sandbox: the grader stages its own MNIST read-only;
- checkpoints and saved models are left out: the grader trains the model itself and measures that;
- links are never followed, only regular files are staged, hidden and tool folders are skipped, and a path
  that is absolute or has a `..` part (a crafted zip or git tree can have one) is left out;
- a file over MAX_FILE_BYTES, or past MAX_FILES / MAX_TOTAL_BYTES, is left out (the notebook, then
  the `.py` files, then the rest by path: code is never dropped for a picture).

The digest covers every staged file's path and content: a change to `model.py` is a change to the
submission, for the cache and for look-alike detection. Standard library only.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import re
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

MAX_FILES = 200
MAX_FILE_BYTES = 8 << 20
MAX_TOTAL_BYTES = 32 << 20
MAX_DEPTH = 8
SKIPPED_FOLDERS = frozenset({".git", "__pycache__", ".ipynb_checkpoints", "__MACOSX", ".venv", "venv", "env",
                             "node_modules", ".mypy_cache", ".pytest_cache", ".idea", ".vscode", ".grader"})
CHECKPOINT_SUFFIXES = frozenset({".pt", ".pth", ".pt2", ".ckpt", ".keras", ".h5", ".hdf5", ".safetensors", ".onnx",
                                 ".pkl", ".pickle", ".joblib", ".tflite", ".pb"})
_DATA_NAME = re.compile(r"(-ubyte(\.gz)?$)|(^mnist.*\.(npz|npy|csv|gz|zip|tar|pt)$)|(\.(npz|npy|parquet|tfrecord)$)",
                        re.I)
_DATA_FOLDERS = frozenset({"mnist", "fashionmnist", "emnist", "kmnist", "qmnist"})
DATA_REASON = "a data file: the grader stages its own MNIST, read-only, where the notebook looks for it"
CHECKPOINT_REASON = "a checkpoint or saved model: the grader trains the model itself and measures that"
LINK_REASON = "a symbolic link: links are never followed"
UNSAFE_PATH_REASON = "not a plain relative path (absolute, or an empty, '.' or '..' part): it could lead outside the " \
                     "hand-in's folder"


@dataclass(frozen=True)
class StagedFile:
    path: str  # relative to the hand-in's root, POSIX separators
    size: int
    sha256: str


@dataclass(frozen=True)
class HandIn:
    """What is staged with one notebook: `root` on the host, the notebook's path and every file's (notebook first)."""

    root: Path
    notebook: str  # relative to root
    files: tuple[StagedFile, ...]
    left_out: tuple[tuple[str, str], ...]  # (path, why)

    @property
    def notebook_dir(self) -> str:
        """The notebook's folder relative to the root ("" when it lies at the root)."""
        parent = str(PurePosixPath(self.notebook).parent)
        return "" if parent == "." else parent

    @property
    def digest(self) -> str:
        """The notebook's own SHA-256 when it came alone (keys made before hand-ins stay valid), else one over every
        staged file's path and content."""
        if len(self.files) == 1:
            return self.files[0].sha256
        sha = hashlib.sha256()
        for f in self.files:
            sha.update(f"{f.path}\0{f.sha256}\n".encode("utf-8", "surrogateescape"))
        return sha.hexdigest()

    @property
    def modules(self) -> tuple[str, ...]:
        """The top-level names the notebook can import from the hand-in (`importable`)."""
        return importable((f.path for f in self.files), self.notebook_dir)


def importable(paths: Iterable[str], notebook_dir: str) -> tuple[str, ...]:
    """The top-level names a notebook in `notebook_dir` can import from the files at `paths` (both relative to the
    hand-in's root): `.py` files and package folders beside it or at the root (the two folders on its sys.path)."""
    split = [PurePosixPath(p).parts for p in paths]
    names: set[str] = set()
    for base in {PurePosixPath(notebook_dir).parts if notebook_dir else (), ()}:
        for parts in split:
            if parts[:len(base)] != base:
                continue
            rest = parts[len(base):]
            if len(rest) == 1 and rest[0].endswith(".py"):
                names.add(rest[0][:-3])
            elif len(rest) > 1 and rest[0].isidentifier():
                names.add(rest[0])
    return tuple(sorted(names))


def matches(path: str, pattern: str) -> bool:
    """Whether the notebook at `path` (POSIX, relative to the hand-in's root) is the one the rubric's `notebook:` glob
    names: the whole path, or its end (a zip or repository that wraps everything in a folder still matches)."""
    parts = path.split("/")
    return any(fnmatch.fnmatchcase("/".join(parts[i:]), pattern) for i in range(len(parts)))


def _sha256(path: Path) -> str:
    sha = hashlib.sha256()
    with open_regular(path) as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


def open_regular(path: Path):
    """`path` opened for reading without following a link; OSError for anything but a regular file."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(f"{path} is not a regular file")
    return os.fdopen(fd, "rb")


def _why_not(rel: PurePosixPath) -> str | None:
    name = rel.name
    if any(part.lower() in _DATA_FOLDERS for part in rel.parts[:-1]) or _DATA_NAME.search(name):
        return DATA_REASON
    if rel.suffix.lower() in CHECKPOINT_SUFFIXES:
        return CHECKPOINT_REASON
    return None


def _skipped_folder(name: str) -> bool:
    """Hidden and tool folders: never looked into, never listed."""
    return name in SKIPPED_FOLDERS or name.startswith(".")


NOT_UTF8_REASON = "a name that is not UTF-8 text: rename it"


def shown(name: str) -> str:
    """A file name as text for facts and reports: bytes that are not UTF-8 (lone surrogates here) as escapes."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _skipped_file(name: str) -> bool:
    return name.startswith(".") and name != ".gitignore"


def _walk(root: Path) -> tuple[list[tuple[str, int]], list[tuple[str, str]]]:
    """(regular files with sizes, left out with why) under root, links never followed."""
    found: list[tuple[str, int]] = []
    left: list[tuple[str, str]] = []
    pending = [(root, PurePosixPath())]
    while pending:
        folder, rel = pending.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            left.append((str(rel), f"a folder that cannot be read ({exc.strerror})"))
            continue
        for entry in entries:
            here = rel / entry.name
            if shown(entry.name) != entry.name:  # facts, reports and the gradebook are UTF-8 text
                left.append((shown(str(here)), NOT_UTF8_REASON))
            elif entry.is_symlink():
                left.append((str(here), LINK_REASON))
            elif entry.is_dir(follow_symlinks=False):
                if _skipped_folder(entry.name):
                    continue
                if len(here.parts) >= MAX_DEPTH:
                    left.append((str(here), f"a folder deeper than {MAX_DEPTH} levels"))
                else:
                    pending.append((Path(entry.path), here))
            elif entry.is_file(follow_symlinks=False):
                if not _skipped_file(entry.name):
                    found.append((str(here), entry.stat(follow_symlinks=False).st_size))
            else:
                left.append((str(here), "not a regular file"))
    return found, left


def _order(notebook: str):
    """Staging order, which decides what the limits keep: the notebook; code before other files; within each,
    what the notebook can import first (beside it, or at the root: the two folders on its sys.path), then the
    notebook's own folder and below, then the rest of the tree, shallow before deep."""
    home = PurePosixPath(notebook).parent

    def key(item: tuple[str, int]) -> tuple:
        path = PurePosixPath(item[0])
        near = 0 if path.parent in (home, PurePosixPath(".")) else 1 if path.is_relative_to(home) else 2
        return (item[0] != notebook, path.suffix != ".py", near, len(path.parts), item[0])
    return key


@dataclass(frozen=True)
class Selection:
    """Which files of a listing are staged (in staging order, with sizes) and which are left out, and why."""

    staged: tuple[tuple[str, int], ...]
    left_out: tuple[tuple[str, str], ...]


def select(listing: Iterable[tuple[str, int]], notebook: str) -> Selection:
    """The hand-in's rules and limits applied to a listing of regular files (path relative to the root, size),
    before anything is read or written: pure. The listing may come from anywhere (a folder's walk, a git tree, a
    zip's members), so a path is taken apart here: one that is absolute or has an empty, `.` or `..` part is left
    out (it could lead outside the hand-in's folder), files in hidden and tool folders are skipped, folders deeper
    than MAX_DEPTH are left out. The notebook is staged whatever its size or name."""
    staged: list[tuple[str, int]] = []
    left: list[tuple[str, str]] = []
    deep: set[str] = set()
    total = 0
    plain = []
    for path, size in listing:
        parts = path.split("/")
        if path.startswith("/") or any(part in ("", ".", "..") for part in parts):
            left.append((path, UNSAFE_PATH_REASON))
        elif path == notebook:
            plain.append((path, size))
        elif any(_skipped_folder(part) for part in parts[:-1]) or _skipped_file(parts[-1]):
            continue
        elif len(parts) > MAX_DEPTH:
            deep.add("/".join(parts[:MAX_DEPTH]))
        else:
            plain.append((path, size))
    left.extend((folder, f"a folder deeper than {MAX_DEPTH} levels") for folder in deep)
    for path, size in sorted(plain, key=_order(notebook)):
        if path != notebook:
            why = _why_not(PurePosixPath(path))
            if why is None and size > MAX_FILE_BYTES:
                why = f"{size:,} bytes, over the {MAX_FILE_BYTES >> 20} MiB a file of the hand-in may have"
            elif why is None and len(staged) >= MAX_FILES:
                why = f"past the {MAX_FILES} files a hand-in may stage"
            elif why is None and total + size > MAX_TOTAL_BYTES:
                why = f"past the {MAX_TOTAL_BYTES >> 20} MiB a hand-in may stage"
            if why is not None:
                left.append((path, why))
                continue
        staged.append((path, size))
        total += size
    return Selection(tuple(staged), tuple(sorted(left)))


def collect(root: Path, notebook: Path) -> HandIn:
    """The hand-in of `notebook` under `root` (the notebook alone when it is not under root)."""
    notebook = Path(notebook)
    try:
        rel = notebook.resolve().relative_to(Path(root).resolve()).as_posix()
        root = Path(root)
    except ValueError:
        root, rel = notebook.parent, notebook.name
    found, left = _walk(root)
    chosen = select(found, rel)
    left.extend(chosen.left_out)
    staged: list[StagedFile] = []
    for path, size in chosen.staged:
        try:
            staged.append(StagedFile(path, size, _sha256(root / path)))
        except OSError as exc:
            left.append((path, f"cannot be read ({exc.strerror or exc})"))
    return HandIn(root, rel, tuple(staged), tuple(sorted(left)))


def alone(notebook: Path) -> HandIn:
    """A notebook handed in by itself (a Canvas file among the class's files, a file given on the command line)."""
    notebook = Path(notebook)
    return HandIn(notebook.parent, notebook.name,
                  (StagedFile(notebook.name, notebook.stat().st_size, _sha256(notebook)),), ())


def stage(handin: HandIn, dest: Path) -> Path:
    """Copy the staged files under `dest`, keeping their layout; returns the notebook's folder there."""
    for f in handin.files:
        target = dest / f.path
        target.parent.mkdir(parents=True, exist_ok=True)
        with open_regular(handin.root / f.path) as src, open(target, "wb") as out:
            while block := src.read(1 << 20):
                out.write(block)
    return dest / handin.notebook_dir if handin.notebook_dir else dest
