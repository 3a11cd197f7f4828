"""What a self-check hands back (pure): `CheckResult`, built from `grade check --json` or from the service's
student results, and shown once in a notebook as a score card.

Two sources, one record. `from_check` reads the facts and the score sheet that `grade check --json` prints;
`from_results` reads the Gradescope-format results a course's `grade serve` answers a self-check with
(`grader.report.audience.student_results`), where an item is a test named "Title (id) [required]" whose
output is "[status] evidence" then the feedback. Both are data a submission influenced: read, never trusted
to be well formed beyond the JSON types, and escaped wherever they are shown.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Optional

from grader.formatting import plural

if TYPE_CHECKING:  # the sheet's model (pydantic) loads when a check's output is read, not on `from grader import check`
    from grader.rubric.sheet import Status

Depth = Literal["static", "dry-run", "full"]
DEPTHS: tuple[Depth, ...] = ("static", "dry-run", "full")
DEPTH_WORDS = {"static": "static check", "dry-run": "dry run", "full": "full run"}

# How many staged file names a card lists before it says "and N more".
SHOWN_FILES = 5

# `grader.report.gradescope.item_test`: "Title (id)" + " [required]"; output "[not judged] evidence\nfeedback".
_TEST_NAME = re.compile(r"^(?P<title>.*) \((?P<id>[^()]+)\)(?P<required> \[required\])?$", re.S)
_STATUS_PREFIX = re.compile(r"^\[(?P<status>partial|not measured|not judged)\] ")
_PREFIXED: dict[str, Status] = {"partial": "partial", "not measured": "not_measured", "not judged": "not_judged"}


@dataclass(frozen=True)
class CheckItem:
    """One rubric item as the student sees it."""

    id: str  # the rubric's id ("params"); "" for the line that sums the items a server does not list
    title: str
    status: Status
    points: float
    max_points: float
    required: bool
    message: str  # what was measured: "model.params.trainable = 13,808; needs < 20,000"
    to_change: str = ""  # the rubric's feedback, shown under "What to change" when the item is not passed

    @property
    def passed(self) -> bool:
        return self.status == "passed"


@dataclass
class CheckResult:
    """A self-check's outcome. `passed` is None when this depth cannot say (a required item is not judged,
    or the grader itself failed); `score` is None when nothing was graded."""

    notebook: str
    depth: Depth
    rubric: str
    passed: Optional[bool]
    score: Optional[float]
    max_score: float
    items: list[CheckItem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # the run's verdict, saved errors, what was staged
    pass_rule: str = ""
    not_judged: list[str] = field(default_factory=list)  # required items this depth could not judge
    shown_in: Optional[int] = field(default=None, init=False, repr=False, compare=False)  # the cell that showed it

    @classmethod
    def from_check(cls, output: dict[str, Any], *, notebook: str, depth: Depth) -> CheckResult:
        """From `grade check --json`: {"facts": ..., "score": <ScoreSheet>, "note": <how the run ended>}."""
        from grader.rubric.sheet import ScoreSheet

        sheet = ScoreSheet.model_validate(output["score"])
        items = [CheckItem(id=i.id, title=i.title, status=i.status, points=i.points, max_points=i.max_points,
                           required=i.required, message=i.evidence, to_change=i.feedback)
                 for i in sheet.items if i.visibility != "hidden"]
        return cls(notebook=notebook, depth=depth, rubric=sheet.rubric, score=sheet.score, max_score=sheet.max_score,
                   passed=_passed(sheet.passed, sheet.score, items), items=items, notes=_notes(output),
                   pass_rule=sheet.pass_rule, not_judged=list(sheet.not_judged))

    @classmethod
    def from_results(cls, results: dict[str, Any], *, notebook: str, depth: Depth, rubric: str = "") -> CheckResult:
        """From the service's student results (Gradescope's results.json, `audience.student_results`)."""
        tests = results.get("tests") or []
        items = [_item_of_test(test) for test in tests]
        summary = [line for line in str(results.get("output") or "").splitlines() if line.strip()]
        given = results.get("score")
        score = float(given) if isinstance(given, (int, float)) else None
        graded = score is not None
        said_passed = bool(summary) and summary[0].endswith("(passed)")  # `gradescope.summary_line`
        return cls(notebook=notebook, depth=depth, rubric=rubric, score=score,
                   max_score=sum(i.max_points for i in items), passed=_passed(said_passed, score, items),
                   items=items, notes=summary[1:] if graded else summary,
                   not_judged=[i.id for i in items if i.required and i.status == "not_judged"])

    @property
    def outcome(self) -> str:
        """One word for the card's colour: passed, failed, or undecided (this depth cannot judge a pass)."""
        return "passed" if self.passed else "undecided" if self.passed is None else "failed"

    def to_change(self) -> list[CheckItem]:
        """Items short of their points that say what to do about it."""
        return [i for i in self.items if i.status in ("failed", "partial", "not_measured") and i.to_change]

    def verdict(self) -> str:
        if self.score is None:
            return "Not graded: the grader could not finish this check (not your score)."
        if self.passed:
            return "Passed: the rubric's pass rule holds."
        failed = [i.id for i in self.items if i.required and i.status not in ("passed", "not_judged")]
        if failed:
            return f"Not passed: required items not passed: {', '.join(failed)}."
        if self.passed is None:
            more = "the dry run or the full check" if self.depth == "static" else "the full check"
            return (f"Nothing required failed so far, but this is not a pass yet: {', '.join(self.not_judged)} "
                    f"{'is' if len(self.not_judged) == 1 else 'are'} not judged in a {DEPTH_WORDS[self.depth]} "
                    f"(run {more}).")
        return f"Not passed: the score {self.score:g} does not meet the pass rule."

    def __str__(self) -> str:
        from grader.selfcheck.card import text

        return text(self)

    __repr__ = __str__

    def _repr_html_(self) -> str:
        from grader.selfcheck.card import html

        return html(self)

    def _ipython_display_(self) -> None:
        from grader.selfcheck.progress import show_once

        show_once(self)


def _passed(said: bool, score: Optional[float], items: list[CheckItem]) -> Optional[bool]:
    """True when the pass rule holds; None when this depth cannot tell (a required item not judged and none
    failed, or nothing graded); else False. (`grade check`'s exit code makes the same call.)"""
    if said:
        return True
    if score is None:
        return None
    if any(i.required and i.status not in ("passed", "not_judged") for i in items):
        return False
    return None if any(i.required and i.status == "not_judged" for i in items) else False


def _item_of_test(test: dict[str, Any]) -> CheckItem:
    name = str(test.get("name") or "")
    named = _TEST_NAME.match(name)
    lines = str(test.get("output") or "").split("\n", 1)
    prefixed = _STATUS_PREFIX.match(lines[0])
    if prefixed:
        status: Status = _PREFIXED[prefixed["status"]]
    else:
        status = "passed" if test.get("status") == "passed" else "failed"
    return CheckItem(id=named["id"] if named else "", title=named["title"] if named else name, status=status,
                     points=float(test.get("score") or 0), max_points=float(test.get("max_score") or 0),
                     required=bool(named and named["required"]),
                     message=lines[0][prefixed.end():] if prefixed else lines[0],
                     to_change=lines[1].strip() if len(lines) > 1 else "")


def _notes(output: dict[str, Any]) -> list[str]:
    """How the run ended (the line `grade check` prints above its table), then what was staged, in short."""
    notes = [str(output.get("note") or "")]
    submission = (output.get("facts") or {}).get("submission") or {}
    staged = [str(f.get("path", "")) for f in submission.get("files") or []][1:]
    if staged:
        more = len(staged) - SHOWN_FILES
        notes.append(f"staged with the notebook: {', '.join(staged[:SHOWN_FILES])}"
                     + (f" and {more} more" if more > 0 else ""))
    left_out = submission.get("left_out") or []
    if left_out:
        first = left_out[0]
        notes.append(f"not staged: {plural(len(left_out), 'file')} ({first.get('path')}: {first.get('reason')}"
                     + (", ..." if len(left_out) > 1 else "") + ")")
    return [note for note in notes if note]
