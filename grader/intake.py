"""Intake: find the submissions in a folder or an LMS zip, name each after its student, hash its content.

Canvas names downloads `lastnamefirstname_userid_submissionid_file.ipynb`
(`lastnamefirstname_LATE_userid_...` when late): the number is the Canvas user id (the ID
column of Canvas's gradebook), the first part a squashed name, `LATE_` Canvas's late flag.
Moodle gives `Full Name_participant_assignsubmission_file_` (a folder, or a prefix of each
file): the number is the *participant* number of that assignment (the grading worksheet's
"Participant N"), not a user id. The default pattern takes the number from either;
`--id-pattern` takes any regex with a group named `id`, and a name that does not match keeps
its file (or folder) stem. A roster CSV (`read_roster`) supplies names, e-mails, sections
and SIS ids the file names lack, and wins over them.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
import shutil
import stat
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath

from grader.errors import GraderError
from grader.handin import MAX_TOTAL_BYTES, HandIn, alone, collect
from grader.links.parse import LINK_SUFFIXES, link_in

SUFFIXES = (".ipynb", ".py", ".pt2")
DEFAULT_ID_PATTERN = r"^[^_]+_(?:LATE_)?(?P<id>\d+)_"
# A zip that inflates past this, or by more than this ratio, is refused: LMS exports of notebooks are small.
MAX_UNZIPPED_BYTES = 2 << 30
MAX_RATIO = 200

CANVAS_NAME = re.compile(r"^(?P<login>[^_\s]+)_(?P<late>LATE_)?(?P<id>\d+)_(?P<submission>\d+)_")
MOODLE_NAME = re.compile(r"^(?P<name>.+?)_(?P<id>\d+)_(?P<plugin>assignsubmission_[a-z]+)_")


@dataclass(frozen=True)
class Submission:
    student: str
    path: Path
    digest: str  # sha256 of the file's bytes (and the model's, if any): what the results are keyed by
    model: Path | None = None  # an exported model handed in beside the notebook (evaluate mode)
    name: str | None = None  # the student's full name (Moodle file names, a roster), None when unknown
    late: bool | None = None  # Canvas's LATE_ marker or the roster's status; None: the LMS did not say
    lms: str | None = None  # "canvas" | "moodle": whose file names these were
    email: str | None = None
    section: str | None = None
    sis_user_id: str | None = None
    sis_login_id: str | None = None
    link: str | None = None  # a link submission: the URL handed in (path is the file that held it until fetched)
    link_error: str | None = None  # why the link could not be fetched (becomes the verdict)
    commit: str | None = None  # a fetched link: the commit graded, its date, the notebook's path in the repository
    commit_date: str | None = None
    notebook_path: str | None = None
    root: Path | None = None  # the hand-in's folder: the files beside and below the notebook staged with it
    handin: HandIn | None = None  # the hand-in as already listed (a fetched link: with what git left out), or None
    unreadable: str | None = None  # why the hand-in cannot be graded (a zip that is not one): becomes the verdict

    def hand_in(self) -> "HandIn | Path":
        """What was handed in: the hand-in (listed now when only its root is known), or the file alone."""
        if self.handin is not None:
            return self.handin
        return collect(self.root, self.path) if self.root is not None else self.path

    @property
    def error(self) -> str | None:
        """Why there is nothing to run: the link could not be fetched, or the hand-in cannot be read."""
        return self.link_error or self.unreadable


@dataclass(frozen=True)
class Identity:
    """Who a file name (or a roster row) says a submission belongs to."""

    student: str
    name: str | None = None
    late: bool | None = None
    lms: str | None = None


def identify(name: str, pattern: str = DEFAULT_ID_PATTERN) -> Identity:
    """The student id, name, late flag and LMS that a Canvas or Moodle file (or folder) name carries."""
    student = student_id(name, pattern)
    moodle = MOODLE_NAME.match(name)
    if moodle and moodle["id"] == student:
        return Identity(student, moodle["name"].strip(), None, "moodle")
    canvas = CANVAS_NAME.match(name)
    if canvas and canvas["id"] == student:
        return Identity(student, None, bool(canvas["late"]), "canvas")
    return Identity(student)


def digest(path: Path) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


def _readable(name: str) -> str:
    """A file name as text: bytes that are not UTF-8 (which Python reads as lone surrogates) become U+FFFD, so the
    id and the name taken from it can be written into reports and CSV files; the file is still opened by its path."""
    return "".join("\ufffd" if "\ud800" <= ch <= "\udfff" else ch for ch in name)


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


def _preference(path: Path) -> tuple:
    """Which of a student's files is graded: a notebook before a script or a bare model, then the newest."""
    return path.suffix.lower() == ".ipynb", path.stat().st_mtime, path.name


def _in_folder(folder: Path) -> Path | None:
    """The one submission file in a student's folder (the newest notebook if there are several)."""
    files = [p for p in folder.rglob("*") if p.suffix.lower() in SUFFIXES and p.is_file() and not p.is_symlink()
             and not p.name.startswith("._") and not {".ipynb_checkpoints", "__MACOSX"} & set(p.parts)]
    if files:
        return max(files, key=_preference)
    links = [p for p in sorted(folder.rglob("*")) if p.suffix.lower() in LINK_SUFFIXES and p.is_file() and link_in(p)]
    return links[0] if links else None  # a link submission (Moodle's onlinetext.html, a .url shortcut)


def _beside(notebook: Path) -> Path | None:
    """An exported model in the same student folder as a notebook."""
    if notebook.suffix.lower() == ".pt2":
        return None
    models = sorted(notebook.parent.glob("*.pt2"))
    return models[0] if models else None


def _original_name(name: str) -> str:
    """A file's name as the student gave it: Canvas's `login_userid_submissionid_` and Moodle's
    `Full Name_N_assignsubmission_file_` prefixes taken off (so `from model import Net` finds model.py)."""
    for prefix in (CANVAS_NAME, MOODLE_NAME):
        match = prefix.match(name)
        if match and match.end() < len(name):
            return name[match.end():]
    return name


def _is_zip(path: Path) -> bool:
    return path.suffix.lower() == ".zip" and path.is_file() and not path.is_symlink()


def _materialise(entries: list[Path], dest: Path) -> None:
    """One student's hand-in rebuilt in `dest`: loose files under their original names, folders as they are (links
    kept as links, which staging leaves out), and every zip unpacked where it lay (a zip that wraps one folder
    gives that folder's content). GraderError when a zip cannot be unpacked."""
    dest.mkdir(parents=True)
    for entry in entries:
        if entry.is_symlink():
            continue
        if entry.is_dir():
            shutil.copytree(entry, dest, symlinks=True, dirs_exist_ok=True)
        elif entry.is_file():
            shutil.copy2(entry, dest / _original_name(entry.name))  # its time kept: the newest notebook wins
    for archive in sorted(p for p in dest.rglob("*.zip") if _is_zip(p)):
        unpacked = archive.with_name(archive.name + ".unpacked")
        inner = safe_extract(archive, unpacked, max_bytes=4 * MAX_TOTAL_BYTES)
        shutil.copytree(inner, archive.parent, symlinks=True, dirs_exist_ok=True)
        shutil.rmtree(unpacked)
        archive.unlink()


def _hand_in(entries: list[Path], root: Path, workspace: Path | None) -> tuple[Path | None, Path | None, str | None]:
    """(the file graded, the hand-in's root or None for a file alone, why it cannot be read) for one student's
    entries in the class folder: their folder(s), or their files at the top level (Canvas)."""
    zips = [e for e in entries if _is_zip(e)] + [p for e in entries if e.is_dir() for p in e.rglob("*.zip")
                                                  if _is_zip(p) and "__MACOSX" not in p.parts]
    loose = [e for e in entries if e.is_file() and e.parent == root]
    if workspace is not None and (zips or len(loose) > 1):
        try:
            _materialise(entries, workspace)
        except GraderError as err:
            return None, None, f"the hand-in could not be unpacked: {err.render()}"
        return _in_folder(workspace), workspace, None
    candidates = []
    for entry in entries:
        if entry.is_dir():
            found = _in_folder(entry)
            if found is not None:
                candidates.append((found, entry))
        elif entry.suffix.lower() in SUFFIXES or (entry.suffix.lower() in LINK_SUFFIXES and link_in(entry)):
            candidates.append((entry, None))
    if not candidates:
        return None, None, None
    files = [c for c in candidates if c[0].suffix.lower() in SUFFIXES] or candidates
    path, folder = max(files, key=lambda c: _preference(c[0]))  # two hand-ins for one student: the newer one
    return path, folder, None


def content_key(path: Path, folder: Path | None, model: Path | None) -> str:
    """What the results are keyed by: every staged file of the hand-in, and the exported model handed in with it."""
    if path.suffix.lower() == ".ipynb" or path.suffix.lower() == ".py":
        content = (collect(folder, path) if folder is not None else alone(path)).digest
    else:
        content = digest(path)
    return content if model is None else hashlib.sha256((content + digest(model)).encode()).hexdigest()


def discover(root: Path, pattern: str = DEFAULT_ID_PATTERN, workspace: Path | None = None) -> list[Submission]:
    """Submissions under `root`: files at the top level, or one folder per student.

    A student's hand-in is their folder (every file in it is staged with the notebook: grader.handin), or their
    files at the top level (Canvas puts every file of a submission there, each prefixed with the same user id).
    With `workspace` (a folder of the caller's), a hand-in that holds zips or several top-level files is rebuilt
    there: prefixes taken off, zips unpacked. The graded file is the newest notebook; the newest .pt2 beside it
    is its model.
    """
    pattern = _compile(pattern)
    if not root.exists():
        raise GraderError("no such file or folder", where=str(root), fix="give a folder of submissions or an LMS zip")
    groups: dict[str, list[tuple[Identity, Path]]] = {}
    for entry in sorted(root.iterdir()):
        if entry.name.startswith(".") or entry.name.startswith("__"):
            continue
        suffix = entry.suffix.lower()
        if entry.is_dir() or suffix in SUFFIXES or _is_zip(entry) or (suffix in LINK_SUFFIXES and link_in(entry)):
            who = identify(_readable(entry.name), pattern)
            groups.setdefault(who.student, []).append((who, entry))
    found = []
    for number, (student, parts) in enumerate(sorted(groups.items())):
        entries = [p for _, p in parts]
        path, folder, unreadable = _hand_in(entries, root, workspace / f"{number:05d}" if workspace else None)
        if path is None and unreadable is None:
            continue
        names = [who for who, _ in parts]
        who = dict(name=next((w.name for w in names if w.name), None),
                   late=True if any(w.late for w in names) else names[0].late, lms=names[0].lms)
        if path is None:
            found.append(Submission(student, entries[0], "", unreadable=unreadable, **who))
            continue
        models = [p for p in entries if p.suffix.lower() == ".pt2" and p.parent == root]
        if path.suffix.lower() == ".pt2":
            model = None
        elif path.parent == root:
            model = max(models, key=_preference) if models else None
        else:
            model = _beside(path)
        found.append(Submission(student, path, content_key(path, folder, model), model, root=folder,
                                link=link_in(path) if path.suffix.lower() in LINK_SUFFIXES else None, **who))
    if not found:
        raise GraderError("no submissions found (.ipynb, .py or .pt2 files, zips of them, links to GitHub, or one "
                          "folder per student)",
                          where=str(root), fix="point at the folder (or zip) the LMS exported")
    return found


def hand_in_at(path: Path) -> tuple[Path, Path | None]:
    """(the file to grade, the hand-in's root) for a path given on the command line: a folder (its newest notebook,
    with everything in the folder), or a notebook (with the repository it lies in: the nearest folder above holding
    `.git`, at most four levels up; else the notebook's own folder). GraderError when a folder holds nothing to grade."""
    path = Path(path)
    if path.is_dir():
        found = _in_folder(path)
        if found is None:
            raise GraderError("no notebook (.ipynb), script (.py) or exported model (.pt2) in this folder",
                              where=str(path), fix="give the folder of your repository that holds the notebook, "
                                                   "or the notebook's path")
        return found, path
    if path.suffix.lower() not in (".ipynb", ".py"):
        return path, None
    for folder in list(path.resolve().parents)[:5]:
        if (folder / ".git").exists():
            return path, folder
    return path, path.resolve().parent


def safe_extract(archive: Path, dest: Path, max_bytes: int = MAX_UNZIPPED_BYTES) -> Path:
    """Unpack an LMS zip (or a student's), refusing entries that escape `dest`, links, and zip bombs."""
    try:
        zf = zipfile.ZipFile(archive)
    except zipfile.BadZipFile:
        raise GraderError("not a zip file", where=str(archive), fix="give the zip your LMS exported, or its folder") from None
    with zf:
        infos = zf.infolist()
        total = sum(i.file_size for i in infos)
        packed = max(1, sum(i.compress_size for i in infos))
        if total > max_bytes or total / packed > MAX_RATIO:
            raise GraderError(f"refusing to unpack: {total:,} bytes from {packed:,} (a zip bomb?)", where=str(archive),
                              fix=f"such zips inflate to at most {max_bytes >> 20:,} MiB and "
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


# --- rosters: names, e-mails, sections and SIS ids the file names lack ---------------------------------------

@dataclass(frozen=True)
class RosterEntry:
    student: str  # the id the file names carry: Canvas user id, Moodle participant number
    name: str | None = None
    email: str | None = None
    section: str | None = None
    sis_user_id: str | None = None
    sis_login_id: str | None = None
    late: bool | None = None


# Generic roster columns (case-insensitive) and their synonyms; Canvas and Moodle exports are recognised by header.
_GENERIC = {"student": ("id", "student", "student_id", "user_id", "participant"),
            "name": ("name", "full name", "full_name"), "email": ("email", "email address", "e-mail"),
            "section": ("section",), "sis_user_id": ("sis user id", "sis_user_id"),
            "sis_login_id": ("sis login id", "sis_login_id", "login")}
POINTS_POSSIBLE = "Points Possible"


def _cell(row: dict, key: str) -> str | None:
    value = (row.get(key) or "").strip()
    return value or None


def read_roster(path: Path) -> dict[str, RosterEntry]:
    """Students by id from a roster CSV: a Canvas gradebook export (Student, ID, SIS User ID, SIS Login ID,
    Section), a Moodle grading worksheet (Identifier "Participant N", Full name, Email address, Status), or any
    CSV with an `id` column and optional name, email, section, sis_user_id, sis_login_id."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise GraderError(f"cannot read the roster ({exc.strerror})", where=str(path),
                          fix="give a CSV file: a Canvas gradebook export, a Moodle grading worksheet, or id,name,...")
    except UnicodeDecodeError:
        raise GraderError("the roster is not UTF-8 text", where=str(path),
                          fix="save it from the spreadsheet as CSV UTF-8") from None
    rows = list(csv.DictReader(io.StringIO(text)))
    header = [h.strip() for h in (rows[0].keys() if rows else next(csv.reader(io.StringIO(text)), []))]
    entries: dict[str, RosterEntry] = {}
    if {"Student", "ID"} <= set(header):  # Canvas gradebook export
        for row in rows:
            who = (row.get("Student") or "").strip()
            if not _cell(row, "ID") or who == POINTS_POSSIBLE or who.strip() == POINTS_POSSIBLE:
                continue
            entries[row["ID"].strip()] = RosterEntry(row["ID"].strip(), who or None, None, _cell(row, "Section"),
                                                     _cell(row, "SIS User ID"), _cell(row, "SIS Login ID"))
        return entries
    if "Identifier" in header:  # Moodle offline grading worksheet
        for row in rows:
            match = re.search(r"(\d+)\s*$", row.get("Identifier") or "")
            if match:
                status = (row.get("Status") or "").lower()
                entries[match[1]] = RosterEntry(match[1], _cell(row, "Full name"), _cell(row, "Email address"),
                                                late=True if re.search(r"\blate\b", status) else None)
        return entries
    lower = {h.lower(): h for h in header}
    columns = {field: next((lower[s] for s in synonyms if s in lower), None) for field, synonyms in _GENERIC.items()}
    if columns["student"] is None:
        raise GraderError(f"the roster has no id column (its columns: {', '.join(header) or 'none'})", where=str(path),
                          fix="name the column with the ids the file names carry `id` (Canvas user id or Moodle "
                              "participant number), or give Canvas's gradebook export / Moodle's grading worksheet")
    for row in rows:
        student = _cell(row, columns["student"])
        if student:
            entries[student] = RosterEntry(student, **{f: _cell(row, c) for f, c in columns.items()
                                                       if f != "student" and c is not None})
    return entries


def with_roster(submissions: list[Submission], roster: dict[str, RosterEntry]) -> list[Submission]:
    """Submissions with what the roster knows about each student (the roster wins over file names)."""
    out = []
    for s in submissions:
        entry = roster.get(s.student)
        if entry is None:
            out.append(s)
            continue
        out.append(replace(s, name=entry.name or s.name, email=entry.email or s.email,
                           section=entry.section or s.section, sis_user_id=entry.sis_user_id or s.sis_user_id,
                           sis_login_id=entry.sis_login_id or s.sis_login_id,
                           late=s.late if entry.late is None else (entry.late or bool(s.late))))
    return out


def canvas_assignments(path: Path) -> dict[str, str]:
    """The assignment columns of a Canvas gradebook export: {assignment id: title}; empty for other rosters."""
    with open(path, newline="", encoding="utf-8-sig") as fh:
        header = next(csv.reader(fh), [])
    if not {"Student", "ID"} <= {h.strip() for h in header}:
        return {}
    return {m["id"]: m["title"] for h in header if (m := re.fullmatch(r"(?P<title>.+) \((?P<id>\d+)\)", h.strip()))}
