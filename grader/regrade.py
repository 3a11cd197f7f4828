"""Re-grading: what the last grading into a folder was (grading.json), and what a new one changed (changes.csv,
against the gradebook it replaces, kept as gradebook.previous.csv)."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from grader.cache import FactsCache
from grader.report.changes import Change, Standing, Tally, diff, read_gradebook, tally, write_changes
from grader.result import Result
from grader.rubric.schema import Rubric
from grader.settings import Options

GRADING_RECORD = "grading.json"  # beside gradebook.csv: the rubric and run settings it was graded with


def record_grading(folder: Path, rubric: Rubric, options: Options) -> Path:
    """Write `folder`/grading.json: the rubric (id, title, file, its SHA-256) and the settings the facts were
    measured under (`FactsCache.settings`), which the next grading into the folder compares with."""
    source = Path(rubric.source)
    record = {"rubric": rubric.id, "title": rubric.title, "source": str(rubric.source),
              "rubric_sha256": hashlib.sha256(source.read_bytes()).hexdigest() if source.is_file() else None,
              "settings": FactsCache.settings(options)}
    path = Path(folder) / GRADING_RECORD
    path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return path


def read_grading(folder: Path) -> Optional[dict]:
    """What `record_grading` wrote in `folder`; None when nothing (or something unreadable) is there."""
    try:
        record = json.loads((Path(folder) / GRADING_RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def rerun_reasons(recorded: Optional[dict], options: Options) -> list[str]:
    """Each run setting that differs between a grading record's and `options` ("mode static→evaluate"): facts
    measured under other settings cannot be re-scored, the submission must run again."""
    before = (recorded or {}).get("settings") or {}
    now = FactsCache.settings(options)
    return [f"{name} {_shown(before, name)}→{_shown(now, name)}" for name in sorted(set(before) | set(now))
            if before.get(name, _UNRECORDED) != now.get(name, _UNRECORDED)]


_UNRECORDED = object()


def _shown(settings: dict, name: str) -> str:
    """A setting as the re-grade names it; "not recorded" when the record is older than the setting."""
    if name not in settings:
        return "not recorded"
    value = settings[name]
    return "none" if value is None else value if isinstance(value, str) else json.dumps(value, sort_keys=True)


@dataclass(frozen=True)
class Previous:
    """The gradebook a grading into an existing folder replaces, kept as gradebook.previous.csv."""

    standings: dict[str, Standing]
    record: Optional[dict]  # its grading.json; None when it was graded before grading.json was written
    path: Path


def keep_previous(out: Path) -> Optional[Previous]:
    """Before a grading writes `out`: copy its gradebook.csv to gradebook.previous.csv (the "before" of the diff,
    kept for audit) and read it with its grading record; None when `out` holds no gradebook."""
    current = Path(out) / "gradebook.csv"
    if not current.is_file():
        return None
    kept = shutil.copyfile(current, Path(out) / "gradebook.previous.csv")
    return Previous(read_gradebook(kept), read_grading(out), kept)


@dataclass(frozen=True)
class Regrade:
    """What grading a class again into the same folder changed."""

    changes: list[Change]
    tally: Tally
    rescored: int  # from cached facts, nothing run
    rerun: int  # run again: new or changed files, or facts measured under other settings
    before: str  # what "before" is, in words
    settings_changed: list[str]  # rerun_reasons against the last grading
    path: Path  # changes.csv
    previous: Path  # gradebook.previous.csv

    def lines(self) -> list[str]:
        said = [f"re-grade: {self.tally.line()}; {self.rescored} re-scored from cached facts (not run), "
                f"{self.rerun} run", f"before: {self.before}"]
        if self.settings_changed:
            said.append("the facts were measured under other run settings (" + ", ".join(self.settings_changed)
                        + "): submissions graded under them ran again")
        said.append(f"changes: {self.path} (before: {self.previous})")
        return said


def regrade_report(previous: Previous, results: Iterable[Result], rubric: Rubric, options: Options,
                   out: Path) -> Regrade:
    """After a grading wrote `out` over `previous`: the changes (written to changes.csv) and what they compare."""
    results = list(results)
    changes = diff(previous.standings, {r.student: Standing.of(r.student, r.sheet) for r in results})
    record = previous.record
    if record is None:
        before = (f"{previous.path.name}, graded before the rubric was recorded: if that was not rubric "
                  f"{rubric.id}, these changes compare two rubrics")
    elif record.get("rubric") != rubric.id:
        before = (f"rubric {record.get('rubric')} ({record.get('title')}), another rubric than {rubric.id} "
                  f"({rubric.title}): the changes compare two rubrics' scores")
    else:
        source = Path(rubric.source)
        digest = hashlib.sha256(source.read_bytes()).hexdigest() if source.is_file() else None
        same = "the same file, unchanged" if digest is not None and digest == record.get("rubric_sha256") else \
            f"as graded from {record.get('source')}" + (" (since changed)" if digest is not None else "")
        before = f"rubric {rubric.id}, {same}"
    return Regrade(changes, tally(changes), sum(r.cached for r in results),
                   sum(not r.cached and r.submission.error is None for r in results), before,
                   rerun_reasons(record, options) if record is not None else [],
                   write_changes(Path(out) / "changes.csv", changes), previous.path)
