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

No student is dropped: one whose hand-in holds nothing gradable, or several notebooks that the
rubric's `notebook:` pattern does not tell apart, is a Submission whose `nothing_to_grade` says
why (it becomes that student's verdict), and so is a student on the roster who handed in nothing.
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
from typing import Any

from grader.errors import GraderError
from grader.handin import MAX_TOTAL_BYTES, HandIn, alone, collect, matches
from grader.links.parse import LINK_SUFFIXES, link_in

SUFFIXES = (".ipynb", ".py", ".pt2")
DEFAULT_ID_PATTERN = r"^[^_]+_(?:LATE_)?(?P<id>\d+)_"
# A zip that inflates past this, or by more than this ratio, is refused: LMS exports of notebooks are small.
MAX_UNZIPPED_BYTES = 2 << 30
MAX_RATIO = 200
# A zip in a zip is unpacked too (students zip a folder that holds their zip), this many levels deep at most.
MAX_NESTED_ZIPS = 3

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
    nothing_to_grade: str | None = None  # why no file of the hand-in was picked (none, or several notebooks)
    handed_in: bool = True  # False: a roster's student whose id no file or folder of the class carries

    def hand_in(self) -> HandIn | Path:
        """What was handed in: the hand-in (listed now when only its root is known), or the file alone."""
        if self.handin is not None:
            return self.handin
        return collect(self.root, self.path) if self.root is not None else self.path

    @property
    def error(self) -> str | None:
        """Why there is nothing to run: the link could not be fetched, the hand-in cannot be read, or no file of
        it could be picked."""
        return self.link_error or self.unreadable or self.nothing_to_grade


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
    """Which of a student's files is graded when no notebook is there: a script or a bare model, the newest."""
    return path.stat().st_mtime, path.name


def _litter(path: Path) -> bool:
    """macOS's resource forks and Jupyter's checkpoints: never a hand-in's file."""
    return path.name.startswith("._") or bool({".ipynb_checkpoints", "__MACOSX"} & set(path.parts))


def _gradable(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in SUFFIXES and p.is_file() and not p.is_symlink()
                  and not _litter(p.relative_to(folder)))


def _links(folder: Path) -> list[Path]:
    """Link submissions in a folder (Moodle's onlinetext.html, a .url shortcut)."""
    return [p for p in sorted(folder.rglob("*")) if p.suffix.lower() in LINK_SUFFIXES and p.is_file() and link_in(p)]


@dataclass(frozen=True)
class Pick:
    """The file graded from a hand-in's files, or why none could be picked (what is wrong, what to do)."""

    path: Path | None
    what: str | None = None
    fix: str | None = None
    empty: bool = False  # no notebook, script, model or link at all (rather than several notebooks)


def pick(files: list[tuple[Path, str]], links: list[Path], pattern: str | None) -> Pick:
    """The file to grade among a hand-in's (file, path in the hand-in): its one notebook (the one the rubric's
    `notebook:` pattern names, when it names one), else the newest script or exported model, else a link. Several
    notebooks and nothing to tell them apart, or none that the pattern names, is no pick: grading the newest would
    grade a draft without saying so."""
    newest: dict[str, Path] = {}  # one path handed in twice (Canvas: a resubmitted file) is the newer one
    for f, rel in files:
        if f.suffix.lower() == ".ipynb" and (rel not in newest or _preference(f) > _preference(newest[rel])):
            newest[rel] = f
    notebooks = [(f, rel) for rel, f in newest.items()]
    found = ", ".join(sorted(rel for _, rel in notebooks))
    if pattern is not None and notebooks:
        named = [(f, rel) for f, rel in notebooks if matches(rel, pattern)]
        if not named:
            return Pick(None, f"no notebook matching the rubric's `notebook: {pattern}` (found: {found})",
                        f"hand in the notebook the assignment asks for, named to match {pattern}")
        notebooks = named
    if len(notebooks) > 1:
        shown = found if pattern is None else ", ".join(sorted(rel for _, rel in notebooks))
        return Pick(None, f"{len(notebooks)} notebooks ({shown}) and nothing says which one to grade",
                    "keep only the notebook to grade (rename or remove the others), or the instructor names it with "
                    "the rubric's `notebook:` pattern (a glob such as S5/*.ipynb)")
    if notebooks:
        return Pick(notebooks[0][0])
    if files:
        return Pick(max((f for f, _ in files), key=_preference))
    if links:
        return Pick(links[0])
    return Pick(None, "no notebook (.ipynb), script (.py), exported model (.pt2), zip of them or GitHub link",
                "hand in the notebook itself (or a zip of the folder that holds it)", empty=True)


def _nothing_to_grade(choice: Pick, where: str, contents: list[str]) -> str:
    """The verdict's sentence for a hand-in no file was picked from: what, where, what it held, what to do."""
    held = "" if not choice.empty else \
        f" (handed in: {', '.join(contents[:8])}{', ...' if len(contents) > 8 else ''})" if contents else \
        " (the folder is empty)"
    return f"nothing to grade in {where}: {choice.what}{held}; {choice.fix}"


def _contents(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                  if p.is_file() and not _litter(p.relative_to(folder)))


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
    # Folders first, then files oldest first: a file handed in twice under one name (Canvas) is the newer one.
    for entry in sorted(entries, key=lambda e: (not e.is_dir(), e.lstat().st_mtime)):
        if entry.is_symlink():
            continue
        if entry.is_dir():
            shutil.copytree(entry, dest, symlinks=True, dirs_exist_ok=True)
        elif entry.is_file():
            shutil.copy2(entry, dest / _original_name(entry.name))  # its time kept: `pick` reads it
    budget = 4 * MAX_TOTAL_BYTES  # for everything unpacked together: a zip in a zip is no way past the limit
    for depth in range(MAX_NESTED_ZIPS + 1):
        archives = _zips(dest)
        if archives and depth == MAX_NESTED_ZIPS:
            raise GraderError(f"zips nested more than {MAX_NESTED_ZIPS} deep ({archives[0].relative_to(dest)})",
                              fix="hand in the notebook, or one zip of the folder that holds it")
        for archive in archives:
            used = sum(p.stat().st_size for p in dest.rglob("*") if p.is_file() and not p.is_symlink())
            unpacked = archive.with_name(archive.name + ".unpacked")
            inner = safe_extract(archive, unpacked, max_bytes=budget - used + archive.stat().st_size)
            archive.unlink()  # before its content is copied in: it may hold a file of its own name
            shutil.copytree(inner, archive.parent, symlinks=True, dirs_exist_ok=True)
            shutil.rmtree(unpacked)


def _zips(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.zip") if _is_zip(p) and not _litter(p.relative_to(folder)))


@dataclass(frozen=True)
class _Found:
    """One student's hand-in in the class folder: the file graded and the hand-in's root, or why there is none."""

    path: Path | None = None
    root: Path | None = None  # None: a file alone (Canvas's loose files)
    unreadable: str | None = None
    nothing_to_grade: str | None = None


def _hand_in(entries: list[Path], root: Path, workspace: Path | None, pattern: str | None) -> _Found:
    """One student's entries in the class folder (their folder(s), or their files at the top level: Canvas) as a
    hand-in: rebuilt in `workspace` when it holds zips or several top-level files."""
    where = ", ".join(e.name + ("/" if e.is_dir() else "") for e in entries)
    zips = [e for e in entries if _is_zip(e)] + [p for e in entries if e.is_dir() for p in _zips(e)]
    loose = [e for e in entries if e.is_file() and e.parent == root]
    if workspace is not None and (zips or len(loose) > 1):
        try:
            _materialise(entries, workspace)
        except GraderError as err:
            return _Found(unreadable=f"the hand-in could not be unpacked: {err.render()}")
        choice = pick([(f, f.relative_to(workspace).as_posix()) for f in _gradable(workspace)], _links(workspace),
                      pattern)
        if choice.path is None:
            return _Found(nothing_to_grade=_nothing_to_grade(choice, where, _contents(workspace)))
        return _Found(choice.path, workspace)
    files: list[tuple[Path, str]] = []
    links: list[Path] = []
    contents: list[str] = []
    for entry in entries:
        if entry.is_dir():
            files += [(f, f.relative_to(entry).as_posix()) for f in _gradable(entry)]
            links += _links(entry)
            contents += _contents(entry)
            continue
        contents.append(entry.name)
        if entry.suffix.lower() in SUFFIXES:
            files.append((entry, _original_name(entry.name)))
        elif entry.suffix.lower() in LINK_SUFFIXES and link_in(entry):
            links.append(entry)
    choice = pick(files, links, pattern)
    if choice.path is None:
        return _Found(nothing_to_grade=_nothing_to_grade(choice, where, contents))
    folder = next((e for e in entries if e.is_dir() and choice.path.is_relative_to(e)), None)
    return _Found(choice.path, folder)


def content_key(path: Path, folder: Path | None, model: Path | None) -> str:
    """What the results are keyed by: every staged file of the hand-in, and the exported model handed in with it."""
    if path.suffix.lower() == ".ipynb" or path.suffix.lower() == ".py":
        content = (collect(folder, path) if folder is not None else alone(path)).digest
    else:
        content = digest(path)
    return content if model is None else hashlib.sha256((content + digest(model)).encode()).hexdigest()


def discover(root: Path, pattern: str = DEFAULT_ID_PATTERN, workspace: Path | None = None,
             notebook: str | None = None) -> list[Submission]:
    """Submissions under `root`: files at the top level, or one folder per student; one per student found.

    A student's hand-in is their folder (every file in it is staged with the notebook: grader.handin), or their
    files at the top level (Canvas puts every file of a submission there, each prefixed with the same user id).
    With `workspace` (a folder of the caller's), a hand-in that holds zips or several top-level files is rebuilt
    there: prefixes taken off, zips unpacked (zips in zips too, MAX_NESTED_ZIPS deep). The graded file is the
    hand-in's one notebook, or the one the rubric's `notebook:` glob names (`pick`); the newest .pt2 beside it is
    its model. A hand-in with no such file is still a Submission: `nothing_to_grade` says why.
    """
    pattern = _compile(pattern)
    if not root.exists():
        raise GraderError("no such file or folder", where=str(root), fix="give a folder of submissions or an LMS zip")
    groups: dict[str, list[tuple[Identity, Path]]] = {}
    for entry in sorted(root.iterdir()):
        if entry.name.startswith(".") or entry.name.startswith("__"):
            continue
        suffix = entry.suffix.lower()
        named = entry.is_file() and re.search(pattern, _readable(entry.name)) is not None  # a student's, by its name
        if entry.is_dir() or suffix in SUFFIXES or _is_zip(entry) or (suffix in LINK_SUFFIXES and link_in(entry)) \
                or named:
            who = identify(_readable(entry.name), pattern)
            groups.setdefault(who.student, []).append((who, entry))
    found = []
    for number, (student, parts) in enumerate(sorted(groups.items())):
        entries = [p for _, p in parts]
        got = _hand_in(entries, root, workspace / f"{number:05d}" if workspace else None, notebook)
        path, folder = got.path, got.root
        names = [who for who, _ in parts]
        same: dict[str, Any] = dict(name=next((w.name for w in names if w.name), None),
                                    late=True if any(w.late for w in names) else names[0].late, lms=names[0].lms)
        if path is None:
            found.append(Submission(student, entries[0], "", unreadable=got.unreadable,
                                    nothing_to_grade=got.nothing_to_grade, **same))
            continue
        models = [p for p in entries if p.suffix.lower() == ".pt2" and p.parent == root]
        if path.suffix.lower() == ".pt2":
            model = None
        elif path.parent == root:
            model = max(models, key=_preference) if models else None
        else:
            model = _beside(path)
        found.append(Submission(student, path, content_key(path, folder, model), model, root=folder,
                                link=link_in(path) if path.suffix.lower() in LINK_SUFFIXES else None, **same))
    if all(s.nothing_to_grade is not None for s in found):  # not one hand-in: the wrong folder, not a class
        raise GraderError("no submissions found (.ipynb, .py or .pt2 files, zips of them, links to GitHub, or one "
                          "folder per student)",
                          where=str(root), fix="point at the folder (or zip) the LMS exported")
    return found


def hand_in_at(path: Path, notebook: str | None = None) -> tuple[Path, Path | None]:
    """(the file to grade, the hand-in's root) for a path given on the command line: a folder (its one notebook, or
    the one the rubric's `notebook:` glob names, with everything in the folder), or a notebook (with the repository
    it lies in: the nearest folder above holding `.git`, at most four levels up; else the notebook's own folder).
    GraderError when a folder holds nothing to grade, or several notebooks and nothing says which."""
    path = Path(path)
    if path.is_dir():
        choice = pick([(f, f.relative_to(path).as_posix()) for f in _gradable(path)], _links(path), notebook)
        if choice.path is not None:
            return choice.path, path
        if choice.empty:
            zips = [z.relative_to(path).as_posix() for z in _zips(path)]
            raise GraderError("no notebook (.ipynb), script (.py) or exported model (.pt2) in this folder"
                              + (f", only {', '.join(zips)}" if zips else ""), where=str(path),
                              fix=("unzip it and give the folder it makes, or the notebook's path" if zips else
                                   "give the folder of your repository that holds the notebook, or the notebook's "
                                   "path"))
        raise GraderError(str(choice.what), where=str(path),
                          fix=f"give the notebook's path ({path / 'NAME.ipynb'}), or keep only that notebook in the "
                              "folder")
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
        raise GraderError("not a zip file", where=str(archive),
                          fix="give the zip your LMS exported, or its folder") from None
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
                          fix="give a CSV file: a Canvas gradebook export, a Moodle grading worksheet, "
                              "or id,name,...") from None
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
            cells: dict[str, Any] = {f: _cell(row, c) for f, c in columns.items() if f != "student" and c is not None}
            entries[student] = RosterEntry(student, **cells)
    return entries


def not_handed_in(submissions: list[Submission], roster: dict[str, RosterEntry], source: Path) -> list[Submission]:
    """A Submission for each student on the roster with no hand-in in `source`: nothing_to_grade says so (their
    gradebook row is there, and their report says why)."""
    handed_in = {s.student for s in submissions}
    return [Submission(e.student, Path(source), "", name=e.name, email=e.email, section=e.section,
                       sis_user_id=e.sis_user_id, sis_login_id=e.sis_login_id, late=e.late, handed_in=False,
                       nothing_to_grade=f"nothing to grade in {Path(source).name}: no file or folder there carries "
                                        f"the id {e.student}, which the roster lists; if the student handed in, "
                                        "check that the file's name carries that id (--id-pattern reads it)")
            for e in roster.values() if e.student not in handed_in]


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
