"""The rubric schema (rubrics/*.yaml): an assignment, how to run it, and items that each read one fact.

    id: mnist-s3
    title: "Session 3: under 20k parameters, 99.4% on MNIST"
    description: Optional text for the report header.
    mode: execute                  # static | evaluate | execute
    limits: {time: 3600, cell_time: 3600, memory: 6G, disk: 2G, gpu: wanted}  # every key: `grade rubric --help`
    model: net                     # the variable to grade; without it, the model the last optimizer step / fit updated
    environment:                   # the grading environment (`grade env --help`); without it, the default one
      packages: [keras>=3]         # added to the default packages; or requirements: requirements.txt
      compat: [torch-1.x]          # shims for APIs the course used then: torch-1.x, keras-1, keras-2, torch-2.x
    items:
      - id: params
        title: Under 20,000 trainable parameters
        fact: model.params.trainable     # any name from `grade rubric facts`
        lt: 20000                        # exactly one of lt, le, ge, gt, eq, in, between ... or bands
        points: 30
        required: true                   # the submission fails if this item does not pass
        visibility: visible              # visible | hidden | after_due_date (as in Gradescope)
        feedback:                        # jinja2: the facts (model.params.trainable, ...), value, item, points
          pass: "{{ value | num }} parameters: within budget."
          fail: "{{ value | num }} parameters: over the 20,000 budget."
      - id: accuracy
        title: At least 99.4% on the 10,000 test images
        fact: eval.accuracy
        points: 40
        bands:                           # partial credit: the first band that matches gives its points
          - {ge: 99.4, points: 40}
          - {ge: 99.0, points: 25}
          - {ge: 98.0, points: 10}
    late: {penalty: 10%}           # optional: a submission the LMS marked late loses 10% of the maximum
    unseen: true                   # optional: also measure on QMNIST's 50,000 digits beyond MNIST's test set
                                   # (eval.unseen_accuracy, eval.unseen_gap); downloads about 10 MB once
    notebook: "S3/*.ipynb"         # optional: which notebook is graded when a hand-in (folder, zip, linked
                                   # repository) holds several: a glob on its path in the hand-in, or that
                                   # path's end; without it, several notebooks are that student's verdict

An item passes with full points when its comparison holds. With `bands` instead
of a comparison, the first band (top to bottom) whose comparison holds gives
its points: all of them is `passed`, some is `partial`, no band is `failed`.
A fact the run should have measured and did not (the notebook crashed, ...)
scores zero as `not_measured`; a fact this depth of grading cannot judge (a
static check, evaluate mode, a dry run: `grade rubric facts`, column "judged
in") scores zero as `not_judged`, and a `mode: static` rubric may not read it.
Numbers compare with a tolerance of 1e-9, so 99.4 measured as
99.39999999999999 is still `>= 99.4`; evidence states them in the fact's unit
(99.4%, 83.3%, 0.6 percentage points).

Feedback templates (`pass`, `fail`, optional `partial`, `not_measured`) see the
facts as nested names (`model.params.trainable`, `verdict.message`), `value`
(the item's fact), `item` (id, title, fact, points, required) and `points`
(awarded); filters `num` (13,808; 99.42), `pct` (0.83 -> 83%), `cells` ([2, 6] -> code cells 2 and 6)
and `plural` (1 | plural('layer') -> 1 layer).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from functools import lru_cache
from typing import Annotated, Any, Literal, Optional, Union, get_args, get_origin

from jinja2 import StrictUndefined, TemplateError, TemplateSyntaxError
from jinja2.sandbox import SandboxedEnvironment
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, Strict, field_validator, model_validator

from grader.env.spec import EnvironmentSpec
from grader.fact_spec import STAGES
from grader.facts import Facts, fact_type, known_facts, spec
from grader.formatting import cells, num, pct, plural
from grader.rubric.sheet import Visibility
from grader.schema_errors import did_you_mean, invalid
from grader.settings import Mode, RubricLimits

OPERATORS = ("lt", "le", "ge", "gt", "eq", "in", "between")
ORDERING = ("lt", "le", "ge", "gt", "between")
SYMBOL = {"lt": "<", "le": "<=", "ge": ">=", "gt": ">", "eq": "="}
TOLERANCE = 1e-9

_ID = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
Number = Annotated[float, Strict()]  # YAML `true` is not a number here


ENV = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False)
ENV.filters.update(num=num, pct=pct, cells=cells, plural=plural)


# What rendering a template may raise: jinja's own errors, and Python's from filters and arithmetic.
RENDER_ERRORS = (TemplateError, ArithmeticError, TypeError, ValueError, LookupError)


@lru_cache(maxsize=1024)
def template(text: str):
    return ENV.from_string(text)


# --- what each fact holds, for checking comparisons when the rubric loads ------------------------------------

def fact_kind(name: str) -> tuple[str, tuple]:
    """('number' | 'bool' | 'text' | 'list' | 'record', the allowed texts of a Literal), as the fact declares."""
    declared = spec(name)
    return declared.kind, declared.choices


def _sample(kind: Any) -> Any:
    if get_origin(kind) is Union:
        kind = next(arg for arg in get_args(kind) if arg is not type(None))
    if get_origin(kind) is Literal:
        return get_args(kind)[0]
    if get_origin(kind) is list:
        return [_sample(get_args(kind)[0])]
    return {bool: True, int: 1, float: 1.0, str: "text"}.get(kind, {})


@lru_cache(maxsize=1)
def sample_context() -> dict[str, Any]:
    """Facts with a plausible value everywhere: templates render against it when the rubric loads."""
    nested: dict[str, Any] = {}
    for name in known_facts():
        *sections, leaf = name.split(".")
        node = nested
        for section in sections:
            node = node.setdefault(section, {})
        node[leaf] = _sample(fact_type(name))
    return Facts.model_validate(nested).to_json()


def _describe_kind(name: str) -> str:
    kind, choices = fact_kind(name)
    if choices:
        return "one of " + ", ".join(choices)
    return {"number": "a number", "bool": "true or false", "text": "text", "list": "a list"}.get(kind, "a record")


def _hint(name: str) -> str:
    kind, choices = fact_kind(name)
    if kind == "bool":
        return "use eq: true or eq: false"
    if choices:
        return f"use eq: {choices[0]} or in: [{', '.join(choices[:2])}]"
    if kind == "text":
        return "use eq: TEXT or in: [TEXT, ...]"
    return "use eq: [...] (the whole value)"


def _fits(name: str, value: Any) -> bool:
    kind, choices = fact_kind(name)
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "text":
        return isinstance(value, str) and (not choices or value in choices)
    if kind == "list":
        return isinstance(value, list)
    return True


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=TOLERANCE, abs_tol=TOLERANCE)


def _equal(a: Any, b: Any) -> bool:
    numbers = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (a, b))
    return _close(a, b) if numbers else a == b


# --- the schema --------------------------------------------------------------------------------------------------

class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Comparison(_Strict):
    """At most one of these is given (exactly one on a band; an item may have bands instead)."""

    lt: Optional[Number] = None
    le: Optional[Number] = None
    ge: Optional[Number] = None
    gt: Optional[Number] = None
    eq: Any = None
    in_: Optional[list[Any]] = Field(None, alias="in")
    between: Optional[tuple[Number, Number]] = None

    @field_validator("between")
    @classmethod
    def _ordered(cls, value: Optional[tuple[float, float]]) -> Optional[tuple[float, float]]:
        if value is not None and value[0] > value[1]:
            raise invalid(f"[{num(value[0])}, {num(value[1])}] is empty",
                          fix=f"write the low end first: between: [{num(value[1])}, {num(value[0])}]")
        return value

    @field_validator("in_")
    @classmethod
    def _not_empty(cls, value: Optional[list[Any]]) -> Optional[list[Any]]:
        if value is not None and not value:
            raise invalid("[] matches nothing", fix="list the values that pass, e.g. in: [ok]")
        return value

    def given(self) -> list[str]:
        """The operators written (YAML names)."""
        return [op for op in OPERATORS if getattr(self, "in_" if op == "in" else op) is not None]

    @property
    def op(self) -> str:
        return self.given()[0]

    @property
    def ref(self) -> Any:
        return getattr(self, "in_" if self.op == "in" else self.op)

    def holds(self, value: Any) -> bool:
        op, ref = self.op, self.ref
        if op == "eq":
            return _equal(value, ref)
        if op == "in":
            return any(_equal(value, r) for r in ref)
        if op == "between":
            return (value > ref[0] or _close(value, ref[0])) and (value < ref[1] or _close(value, ref[1]))
        if _close(value, ref):
            return op in ("le", "ge")
        return {"lt": value < ref, "le": value < ref, "ge": value > ref, "gt": value > ref}[op]

    def needs(self, show: Callable[[Any], str] = str) -> str:
        """'< 20,000', 'one of ok, timeout', 'between 1 and 5' with values shown by `show`."""
        op, ref = self.op, self.ref
        if op == "in":
            return "one of " + ", ".join(show(r) for r in ref)
        if op == "between":
            return f"between {show(ref[0])} and {show(ref[1])}"
        return f"{SYMBOL[op]} {show(ref)}"

    def _check_against(self, fact: str, at: tuple) -> None:
        op = self.op
        kind, choices = fact_kind(fact)
        if op in ORDERING and kind != "number":
            raise invalid(f"{op} compares numbers, but {fact} is {_describe_kind(fact)}", fix=_hint(fact),
                          at=at + (op,))
        values = self.ref if op == "in" else [self.ref] if op == "eq" else []
        for value in values:
            if not _fits(fact, value):
                if choices and isinstance(value, str):
                    fix = f"{fact} is one of: {', '.join(choices)}"
                else:
                    fix = f"{fact} is {_describe_kind(fact)}; {'write a number' if kind == 'number' else _hint(fact)}"
                raise invalid(f"{op}: {value!r} never matches {fact}{did_you_mean(value, choices)}", fix=fix,
                              at=at + (op,))


ALLOWED_COMPARISONS = "lt, le, ge, gt (a number), eq (a value), in (a list of values), between ([low, high])"


class Band(Comparison):
    points: Annotated[float, Field(gt=0)]

    @model_validator(mode="after")
    def _one(self) -> Band:
        given = self.given()
        if len(given) != 1:
            found = f"found {', '.join(given)}" if given else "found none"
            raise invalid(f"a band needs exactly one comparison ({found})", fix="comparisons: " + ALLOWED_COMPARISONS)
        return self


class Feedback(_Strict):
    pass_: str = Field("", alias="pass")
    fail: str = ""
    partial: Optional[str] = None  # default: fail
    not_measured: Optional[str] = None  # default: why it was not measured

    def for_status(self, status: str) -> Optional[str]:
        """The template for an item's status; None means "use the default text"."""
        if status == "passed":
            return self.pass_
        if status == "partial":
            return self.partial if self.partial is not None else self.fail
        if status == "failed":
            return self.fail
        return self.not_measured


TEMPLATE_NAMES = ("value, item, points, the facts (" + ", ".join(Facts.model_fields)
                  + ") and the filters num, pct, cells, plural")


class Item(Comparison):
    id: Annotated[str, Field(pattern=_ID)]
    title: str
    fact: str
    points: Annotated[float, Field(ge=0)]
    bands: Optional[list[Band]] = None
    required: bool = False
    visibility: Visibility = "visible"
    feedback: Feedback = Feedback()

    @field_validator("fact")
    @classmethod
    def _known(cls, name: str) -> str:
        known = known_facts()
        if name not in known:
            raise invalid(f"unknown fact {name!r}{did_you_mean(name, known)}", fix="known facts: " + ", ".join(known))
        return name

    @model_validator(mode="after")
    def _consistent(self) -> Item:
        given = self.given() + (["bands"] if self.bands is not None else [])
        if len(given) != 1:
            found = f"found {', '.join(given)}" if given else "found none"
            raise invalid(f"an item needs exactly one comparison, or bands ({found})",
                          fix="comparisons: " + ALLOWED_COMPARISONS + "; or bands: [{ge: ..., points: ...}, ...]")
        if self.bands is None:
            self._check_against(self.fact, ())
        else:
            if not self.bands:
                raise invalid("bands: [] gives no points", fix="list bands like {ge: 99.4, points: 30}", at=("bands",))
            for i, band in enumerate(self.bands):
                band._check_against(self.fact, ("bands", i))
                if band.points > self.points:
                    raise invalid(f"a band gives {num(band.points)} points, more than the item's {num(self.points)}",
                                  fix="a band gives at most the item's points", at=("bands", i, "points"))
            if max(band.points for band in self.bands) < self.points:
                raise invalid(f"no band gives the item's {num(self.points)} points, so it can never pass",
                              fix="give the first band all the points, e.g. {ge: 99.4, points: "
                              f"{num(self.points)}}}", at=("bands",))
        self._check_feedback()
        return self

    def _check_feedback(self) -> None:
        """Syntax errors and misspelt names surface when the rubric loads, not in a student's report."""
        value = _sample(fact_type(self.fact))
        for key in ("pass", "fail", "partial", "not_measured"):
            text = getattr(self.feedback, "pass_" if key == "pass" else key)
            if text is None:
                continue
            try:
                template(text).render(self.context(sample_context(), None if key == "not_measured" else value,
                                                   self.points))
            except TemplateSyntaxError as err:
                raise invalid(f"feedback.{key}: template syntax error: {err.message}",
                              fix="check the {{ ... }} and {% ... %} (jinja2 syntax)", at=("feedback", key)) from None
            except RENDER_ERRORS as err:
                why = str(err) if isinstance(err, TemplateError) else f"the template fails on sample facts ({err})"
                raise invalid(f"feedback.{key}: {why}", fix="templates may use " + TEMPLATE_NAMES,
                              at=("feedback", key)) from None

    def context(self, facts_json: dict[str, Any], value: Any, points: float) -> dict[str, Any]:
        """What a feedback template sees."""
        item = {"id": self.id, "title": self.title, "fact": self.fact, "points": self.points, "required": self.required}
        return {**facts_json, "value": value, "item": item, "points": points}

    @property
    def full_band(self) -> Optional[Band]:
        """The first band that gives all the points (what passing means for a banded item)."""
        return next((b for b in self.bands or [] if b.points == self.points), None)


class PassRule(_Strict):
    """What "passed" means for the assignment; the CLI, JSON, gradebook and reports all use this one rule."""

    all_required: bool = True  # every required item passes (with all its points)
    min_score: Optional[Annotated[float, Field(ge=0)]] = None  # and the score reaches this

    def describe(self, rubric_items: list[Item]) -> str:
        """'every required item (params, accuracy) passes and the score is at least 85'."""
        required = [item.id for item in rubric_items if item.required]
        parts = []
        if self.all_required and required:
            parts.append(f"every required item ({', '.join(required)}) passes")
        if self.min_score is not None:
            parts.append(f"the score is at least {num(self.min_score)}")
        return " and ".join(parts) or "always (the rubric sets no pass rule)"


class LatePolicy(_Strict):
    """`late: {penalty: 10%}`: what a submission the LMS marked late (fact `submission.late`) loses.

    `10%` takes 10% of the rubric's maximum off the score (Canvas's late policy works on points possible);
    a plain number takes that many points. The score never goes below zero, and `passed` (the work meets
    the assignment) is not changed by it.
    """

    penalty: Union[Number, str]

    @field_validator("penalty")
    @classmethod
    def _penalty(cls, value: Union[float, str]) -> Union[float, str]:
        if isinstance(value, str):
            match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*%\s*", value)
            if not match or float(match[1]) > 100:
                raise invalid(f"{value!r} is not a percentage", fix="write it like 10% (of the maximum score), "
                              "or a number of points")
        elif value < 0:
            raise invalid(f"{value:g} is negative", fix="a penalty is what is taken off: 10% or 5 (points)")
        return value

    def points(self, max_score: float) -> float:
        """The points a late submission loses on a rubric worth `max_score`."""
        if isinstance(self.penalty, str):
            return round(max_score * float(self.penalty.strip().rstrip("%")) / 100, 6)
        return float(self.penalty)


class Rubric(_Strict):
    id: Annotated[str, Field(pattern=_ID)]
    title: str
    description: str = ""
    mode: Mode = "execute"
    limits: RubricLimits = RubricLimits()
    model: str = "model"
    pass_: PassRule = Field(PassRule(), alias="pass")
    items: Annotated[list[Item], Field(min_length=1)]
    environment: Optional[EnvironmentSpec] = None  # the grading environment (grader.env.spec); None: the default
    late: Optional[LatePolicy] = None
    leaderboard: bool = False  # Gradescope: rank submissions by parameters and measured accuracy
    # Which notebook of a hand-in is graded when it holds several (a folder, a zip, a linked repository): a glob
    # matched against the notebook's path in the hand-in, or its end (S4/*.ipynb, *final*.ipynb).
    notebook: Optional[str] = None
    unseen: bool = False  # also measure on QMNIST's 50,000 digits beyond MNIST (eval.unseen_accuracy); downloads once

    _source: str = PrivateAttr(default="<rubric>")

    @field_validator("model")
    @classmethod
    def _variable(cls, name: str) -> str:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise invalid(f"{name!r} is not a Python variable name", fix="name the notebook variable, e.g. model: net")
        return name

    @field_validator("notebook")
    @classmethod
    def _notebook(cls, pattern: Optional[str]) -> Optional[str]:
        if pattern is None:
            return None
        parts = pattern.split("/")
        if not pattern.strip() or pattern.startswith("/") or ".." in parts or "" in parts:
            raise invalid(f"{pattern!r} is not a path inside the hand-in", fix="write a glob relative to the "
                          "hand-in's folder, e.g. notebook: S5/*.ipynb or notebook: '*final*.ipynb'")
        if not pattern.endswith((".ipynb", "*")):
            raise invalid(f"{pattern!r} can match no notebook: it matches paths, and a notebook's ends in .ipynb",
                          fix=f"end it with .ipynb, e.g. notebook: {re.sub(r'[.][^./*]*$', '', pattern)}.ipynb")
        return pattern

    @model_validator(mode="after")
    def _whole(self) -> Rubric:
        first: dict[str, int] = {}
        for i, item in enumerate(self.items):
            if item.id in first:
                raise invalid(f"item id {item.id!r} is used twice", fix="item ids must be unique; the first is here",
                              at=("items", i, "id"), see=("items", first[item.id], "id"))
            first[item.id] = i
            declared = spec(item.fact)
            if self.mode == "static" and not declared.judged_at("static"):
                modes = " or ".join(f"mode: {m}" for m in ("execute", "evaluate") if declared.judged_at(m))
                raise invalid(f"item {item.id!r} reads {item.fact}, which only a run measures "
                              f"({STAGES[declared.stage]}), but mode is static",
                              fix=f"use {modes}, or drop the item", at=("items", i, "fact"))
        if self.pass_.min_score is not None and self.pass_.min_score > self.max_score:
            raise invalid(f"pass: min_score {num(self.pass_.min_score)} is more than the {num(self.max_score)} "
                          "points the items give, so nothing can pass",
                          fix=f"lower min_score to at most {num(self.max_score)}", at=("pass", "min_score"))
        return self

    @property
    def source(self) -> str:
        """The file it was loaded from."""
        return self._source

    @property
    def max_score(self) -> float:
        return sum(item.points for item in self.items)

    def item(self, item_id: str) -> Item:
        return next(item for item in self.items if item.id == item_id)
