"""Intake: find the submissions in a folder or an LMS zip, name each after its student, hash its content.

Canvas names downloads `lastname_userid_submissionid_file.ipynb` (`lastname_LATE_userid_...`
when late); Moodle gives one folder per student, `Full Name_userid_assignsubmission_file_`.
The default pattern takes the numeric user id from either; `--id-pattern` takes any regex
with a group named `id`, and a name that does not match keeps its file (or folder) stem.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from grader.errors import GraderError

SUFFIXES = (".ipynb", ".py", ".pt2")
DEFAULT_ID_PATTERN = r"^[^_]+_(?:LATE_)?(?P<id>\d+)_"
# A zip that inflates past this, or by more than this ratio, is refused: LMS exports of notebooks are small.
MAX_UNZIPPED_BYTES = 2 << 30
MAX_RATIO = 200


@dataclass(frozen=True)
class Submission:
    student: str
    path: Path
    digest: str  # sha256 of the file's bytes (and the model's, if any): what the results are keyed by
    model: Path | None = None  # an exported model handed in beside the notebook (evaluate mode)


def digest(path: Path) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


def student_id(name: str, pattern: str) -> str:
    match = re.search(pattern, name)
    if match and match.groupdict().get("id"):
        return match["id"]
    return Path(name).stem if "." in name else name


def _compile(pattern: str) -> str:
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise GraderError(f"--id-pattern is not a valid regular expression ({exc})", where="--id-pattern",
                          fix=r"write it like '^[^_]+_(?P<id>\d+)_'") from None
    if "id" not in compiled.groupindex:
        raise GraderError("--id-pattern has no group named `id`", where="--id-pattern",
                          fix=r"name the student id's group: (?P<id>...), e.g. '^[^_]+_(?P<id>\d+)_'")
    return pattern


def _in_folder(folder: Path) -> Path | None:
    """The one submission file in a student's folder (the newest notebook if there are several)."""
    files = [p for p in folder.rglob("*") if p.suffix.lower() in SUFFIXES and p.is_file()
             and ".ipynb_checkpoints" not in p.parts]
    if not files:
        return None
    return max(files, key=lambda p: (p.suffix.lower() == ".ipynb", p.stat().st_mtime, p.name))


def _beside(notebook: Path) -> Path | None:
    """An exported model in the same student folder as a notebook."""
    if notebook.suffix.lower() == ".pt2":
        return None
    models = sorted(notebook.parent.glob("*.pt2"))
    return models[0] if models else None


def discover(root: Path, pattern: str = DEFAULT_ID_PATTERN) -> list[Submission]:
    """Submissions under `root`: files at the top level, or one folder per student."""
    pattern = _compile(pattern)
    if not root.exists():
        raise GraderError("no such file or folder", where=str(root), fix="give a folder of submissions or an LMS zip")
    found: dict[str, Submission] = {}
    for entry in sorted(root.iterdir()):
        if entry.name.startswith(".") or entry.name.startswith("__"):
            continue
        if entry.is_dir():
            path = _in_folder(entry)
        elif entry.suffix.lower() in SUFFIXES:
            path = entry
        else:
            continue
        if path is None:
            continue
        student = student_id(entry.name, pattern)
        if student in found:  # two files for one student (a resubmission): keep the newer one
            if found[student].path.stat().st_mtime >= path.stat().st_mtime:
                continue
        model = _beside(path) if entry.is_dir() else None
        key = digest(path) if model is None else hashlib.sha256((digest(path) + digest(model)).encode()).hexdigest()
        found[student] = Submission(student, path, key, model)
    if not found:
        raise GraderError("no submissions found (.ipynb, .py or .pt2 files, or one folder per student)",
                          where=str(root), fix="point at the folder (or zip) the LMS exported")
    return sorted(found.values(), key=lambda s: s.student)


def safe_extract(archive: Path, dest: Path) -> Path:
    """Unpack an LMS zip, refusing entries that escape `dest`, links, and zip bombs."""
    try:
        zf = zipfile.ZipFile(archive)
    except zipfile.BadZipFile:
        raise GraderError("not a zip file", where=str(archive), fix="give the zip your LMS exported, or its folder") from None
    with zf:
        infos = zf.infolist()
        total = sum(i.file_size for i in infos)
        packed = max(1, sum(i.compress_size for i in infos))
        if total > MAX_UNZIPPED_BYTES or total / packed > MAX_RATIO:
            raise GraderError(f"refusing to unpack: {total:,} bytes from {packed:,} (a zip bomb?)", where=str(archive),
                              fix=f"submissions zips inflate to at most {MAX_UNZIPPED_BYTES >> 30} GiB and "
                                  f"{MAX_RATIO}x; unpack it yourself if it is genuine")
        for info in infos:
            name = PurePosixPath(info.filename.replace("\\", "/"))
            if name.is_absolute() or ".." in name.parts or re.match(r"^[A-Za-z]:", info.filename):
                raise GraderError(f"refusing to unpack: the entry {info.filename!r} points outside the folder",
                                  where=str(archive), fix="the zip was not made by an LMS; check where it came from")
            if stat.S_ISLNK(info.external_attr >> 16):
                raise GraderError(f"refusing to unpack: the entry {info.filename!r} is a symbolic link",
                                  where=str(archive), fix="the zip was not made by an LMS; check where it came from")
        dest.mkdir(parents=True, exist_ok=True)
        for info in infos:
            target = dest / info.filename
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out)
    # An LMS zip often wraps everything in one folder: grade what is inside it.
    entries = [p for p in dest.iterdir() if not p.name.startswith(("__MACOSX", "."))]
    return entries[0] if len(entries) == 1 and entries[0].is_dir() else dest
