"""How facts and verdict kinds describe themselves: the vocabulary `grader.facts` declares each fact with.

A fact's declaration (`Fact`, in `Annotated[...]` beside its field, or a section's `declared` default) says its
unit, the stage that measures it, the depths of grading that can judge it and where its value comes from. Rubric
validation, scoring, the reports and `grade rubric facts` read these declarations (`grader.facts.spec`), never
lists of fact names. Each verdict kind is one `VerdictText`: what the report says and why facts went unmeasured.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from typing import Any, Literal, Optional, get_args

from grader.formatting import num, pct

# How a number reads: count and number plainly (13,808; 14.5); percent is 0..100 (99.42%); share is 0..1 (75%);
# points are percentage points between two percents; pixels and seconds carry their unit.
Unit = Literal["count", "number", "percent", "share", "points", "pixels", "seconds"]
Kind = Literal["number", "bool", "text", "list", "record"]
Stage = Literal["static", "run", "model", "evaluation", "derived", "verdict", "quiz", "intake", "grading"]
# The depths of grading: the three modes, and execute mode's dry run.
Depth = Literal["static", "evaluate", "execute", "dry_run"]
Provenance = Literal["grader", "notebook", "student", "lms"]

STAGES: dict[Stage, str] = {
    "static": "static inspection of the notebook file",
    "run": "the run of the notebook in the sandbox",
    "model": "analysis of the exported model",
    "evaluation": "the clean evaluation of the exported model",
    "derived": "computed from other facts (facts.with_derived)",
    "verdict": "the verdict on how grading ended (grader.verdict)",
    "quiz": "checking the quiz answers",
    "intake": "intake of the hand-in",
    "grading": "the grading settings",
}
PROVENANCES: dict[Provenance, str] = {
    "grader": "measured by the grader",
    "notebook": "printed or written by the notebook",
    "student": "counted in the student's process, where its code could change it",
    "lms": "from the LMS",
}
DEPTHS: tuple[Depth, ...] = get_args(Depth)
EVERY_DEPTH: frozenset[Depth] = frozenset(DEPTHS)
MEASURED: frozenset[Depth] = frozenset({"evaluate", "execute", "dry_run"})  # a model was exported and analysed
EVALUATED: frozenset[Depth] = frozenset({"evaluate", "execute"})  # the model was measured on the test set
RUN: frozenset[Depth] = frozenset({"execute", "dry_run"})  # the notebook ran
FULL_RUN: frozenset[Depth] = frozenset({"execute"})  # the notebook ran to the end of its training


@dataclass(frozen=True)
class Fact:
    """A fact's declaration; what it leaves None it takes from its section's (`declared`) and the sections above."""

    unit: Optional[Unit] = None  # numbers only; None: count for an int, number for a float
    stage: Optional[Stage] = None
    judged: Optional[frozenset[Depth]] = None  # the depths of grading that can judge it
    provenance: Optional[Provenance] = None

    def over(self, base: Fact) -> Fact:
        """This declaration with what it leaves open taken from `base`."""
        given = {f.name: getattr(self, f.name) for f in fields(self)}
        return replace(base, **{name: value for name, value in given.items() if value is not None})


LIST_SHOWN = 8


@dataclass(frozen=True)
class FactSpec:
    """Everything declared about one fact, resolved (`grader.facts.spec`)."""

    name: str
    description: str
    kind: Kind
    choices: tuple[str, ...]  # the allowed texts of a Literal
    unit: Optional[Unit]
    stage: Stage
    judged: frozenset[Depth]
    provenance: Provenance

    def judged_at(self, depth: Depth) -> bool:
        return depth in self.judged

    def show(self, value: Any) -> str:
        """The value as evidence and feedback state it, exactly: 13,808; 99.42%; 83.3%; true; [3, 7]; not measured."""
        if value is None:
            return "not measured"
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, (int, float)):
            return _EXACT.get(self.unit, num)(value)
        if isinstance(value, list):
            shown = ", ".join(self.show(v) for v in value[:LIST_SHOWN])
            return f"[{shown}, ...] ({len(value)} in all)" if len(value) > LIST_SHOWN else f"[{shown}]"
        return str(value)

    def show_short(self, value: Any) -> str:
        """The value on a report's card, rounded: 99.42%; 83%; 28 px; 1,234 s; yes."""
        if isinstance(value, bool):
            return "yes" if value else "no"
        if isinstance(value, (int, float)):
            return _SHORT.get(self.unit, num)(value)
        return self.show(value)


_EXACT: dict[Optional[Unit], Callable[[Any], str]] = {
    "percent": lambda v: num(v) + "%",
    "share": pct,
    "points": lambda v: num(v) + " percentage points",
    "pixels": lambda v: num(v) + " px",
    "seconds": lambda v: num(v) + " s",
}
_SHORT: dict[Optional[Unit], Callable[[Any], str]] = {
    "percent": lambda v: f"{v:.2f}%",
    "share": lambda v: f"{v:.0%}",
    "points": lambda v: f"{v:+.2f} points",
    "pixels": lambda v: num(v) + " px",
    "seconds": lambda v: f"{v:,.0f} s",
}


# --- verdict kinds ------------------------------------------------------------------------------------------------

# grader_failed: the machine (a sandbox that never started, a cgroup, a grader error), not the submission: it
# scores nothing, is never cached and leaves the student blank in the LMS. sandbox_error is what earlier versions
# said for the same (facts stored by them still read); nothing decides it now.
VerdictKind = Literal[
    "ok", "timeout", "memory", "crash", "no_model", "bad_model", "invalid_notebook",
    "output_limit", "missing_module", "sandbox_error", "disk", "not_exportable", "lookup", "grader_failed",
    "nothing_to_grade",
]


@dataclass(frozen=True)
class VerdictText:
    """What a verdict kind says: in the report ("The notebook <label>.") and for the facts it left unmeasured."""

    label: str  # the end of the sentence "The notebook ...": "ran out of time"
    because: str  # why a fact the run should have measured was not: "the notebook ran out of time"

    @property
    def headline(self) -> str:
        """The message to the student, at the top of the report."""
        return f"The notebook {self.label}."


VERDICTS: dict[VerdictKind, VerdictText] = {
    "ok": VerdictText("ran to the end", "the grader could not measure it from this submission"),
    "timeout": VerdictText("ran out of time", "the notebook ran out of time"),
    "memory": VerdictText("ran out of memory", "the notebook ran out of memory"),
    "crash": VerdictText("stopped with an error", "the notebook crashed"),
    "no_model": VerdictText("left no model to evaluate", "no model was found after the notebook ran"),
    "bad_model": VerdictText("left a model the grader could not evaluate", "the model could not be measured"),
    "invalid_notebook": VerdictText("is not a notebook the grader can read", "the notebook could not be read"),
    "nothing_to_grade": VerdictText("to grade could not be picked out of the hand-in, so nothing was graded",
                                    "no notebook to grade was picked out of the hand-in"),
    "output_limit": VerdictText("printed more output than the grader keeps",
                                "the notebook printed more than the output limit"),
    "missing_module": VerdictText("imports a module that is neither in the grading environment nor handed in with "
                                  "it", "the notebook imports a module that is neither in the grading environment "
                                  "nor handed in with it"),
    "sandbox_error": VerdictText("could not be started by the grader (not the student's fault)",
                                 "the sandbox failed to run the notebook"),
    "grader_failed": VerdictText("was not graded: the grader failed — not your fault", "the grader failed"),
    "disk": VerdictText("filled its disk quota (bytes or files)",
                        "the notebook filled its disk quota (bytes or files)"),
    "not_exportable": VerdictText("left a model that torch.export cannot capture, so it was not measured",
                                  "torch.export could not capture the model, so it was not measured"),
    "lookup": VerdictText("left a model that looks answers up in stored data instead of computing them",
                          "the model looks answers up in stored data, so its accuracy is not credited"),
}
