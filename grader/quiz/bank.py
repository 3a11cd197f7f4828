"""Quiz banks (quizzes/*.yaml): the schema, and loading with errors that name the file and line.

A bank is a quiz id, a title and a list of questions. Computed questions
(`shape`, `rf`, `params`, `formula`) carry a layer stack (one-line or YAML form,
or the name of a stack under `stacks:`) and parameters; their keys are computed
by the engine from the drawn stack. `choice` questions carry options, the key
and an explanation. Every text, stack, `layer` and `target` is a jinja2 template
over the question's parameters.

    quiz: cnn-rf-basics
    title: Receptive fields and shapes
    points: 1                      # default points per question
    stacks:
      net400: "400x400x3 > c3:32 > c3:64 > mp2 > c1:32"
    questions:
      - id: out-size               # answers name the question by it: `out-size: 26x26`
        title: Output size         # the heading students read (default: from the kind)
        kind: shape                # shape | rf | params | formula | choice
        ask: hw                    # shape: hwc (default) | hw | c
        params:
          n: {range: [28, 64]}     # inclusive; optional step
          k: [3, 5]                # one of a list
        let: {p: "k // 2"}         # values computed from the drawn ones
        require: ["n > 2 * k"]     # redraw until these hold
        stack: "{{ n }}x{{ n }}x1 > c{{ k }}:8 s2 p{{ p }}"   # or a name under stacks:, or YAML input/layers
        layer: 1                   # 1-based row of the layer table; -1 is the last
        text: "The network is {{ network }}. What is the output size (HxW)?"
        points: 2                  # default 1 (or the bank's points:)
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from grader import yamlio
from grader.errors import GraderError
from grader.quiz import template
from grader.schema_errors import dotted, schema_error

KINDS = ("shape", "rf", "params", "formula", "choice")
_ID = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
_MAX_RANGE = 10_000


def _choices(name: str, spec: Any) -> tuple:
    """A parameter as the tuple of values it is drawn from."""
    if isinstance(spec, dict):
        if set(spec) - {"range", "step"} or "range" not in spec:
            raise ValueError(f"params.{name}: a range is written {{range: [low, high], step: 1}}")
        bounds, step = spec["range"], spec.get("step", 1)
        if (not isinstance(bounds, list) or len(bounds) != 2 or
                not all(isinstance(b, int) and not isinstance(b, bool) for b in bounds + [step])):
            raise ValueError(f"params.{name}: range bounds and step must be whole numbers, "
                             "e.g. {range: [28, 64], step: 2}")
        low, high = bounds
        if step < 1 or low > high:
            raise ValueError(f"params.{name}: range [{low}, {high}] with step {step} is empty")
        if (high - low) // step + 1 > _MAX_RANGE:
            raise ValueError(f"params.{name}: range has more than {_MAX_RANGE} values")
        return tuple(range(low, high + 1, step))
    if isinstance(spec, list):
        if not spec or not all(isinstance(v, (int, float, str, bool)) for v in spec):
            raise ValueError(f"params.{name}: a list of values needs at least one number or word")
        return tuple(spec)
    if isinstance(spec, (int, float, str, bool)):
        return (spec,)
    raise ValueError(f"params.{name}: write a list [3, 5], a range {{range: [28, 64]}} or one value")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Question(_Strict):
    id: Annotated[str, Field(pattern=_ID)]  # how answers name the question: `id: answer` in the notebook's quiz cell
    title: str = ""  # the heading students read (a template); "" gives the kind's (`default_title`)
    text: str
    points: Optional[Annotated[float, Field(gt=0)]] = None
    params: dict[str, tuple] = {}
    let: dict[str, str] = {}
    require: list[str] = []
    explanation: str = ""
    tags: list[str] = []

    @field_validator("params", mode="before")
    @classmethod
    def _params(cls, value: Any) -> dict[str, tuple]:
        if not isinstance(value, dict):
            raise ValueError("params is a mapping of name: values")
        out = {}
        for name, spec in value.items():
            if not isinstance(name, str) or not name.isidentifier() or name in template.RESERVED:
                raise ValueError(f"params: {name!r} cannot be a parameter name "
                                 f"(use a Python identifier other than {', '.join(sorted(template.RESERVED))})")
            out[name] = _choices(name, spec)
        return out

    @field_validator("let")
    @classmethod
    def _let(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if not name.isidentifier() or name in template.RESERVED:
                raise ValueError(f"let: {name!r} cannot be a name (use a Python identifier other than "
                                 f"{', '.join(sorted(template.RESERVED))})")
        return value


Layer = Union[int, str]  # a row number, or a template that renders to one; "last" = -1


class _Computed(_Question):
    stack: Union[str, dict[str, Any]]
    tolerance: Annotated[float, Field(ge=0)] = 0.0


class ShapeQuestion(_Computed):
    """Output size after layer `layer`: HxWxC (ask: hwc), HxW (hw) or channels (c)."""

    kind: Literal["shape"]
    layer: Layer
    ask: Literal["hwc", "hw", "c"] = "hwc"


class RfQuestion(_Computed):
    """Receptive field after layer `layer` (the standard recurrence)."""

    kind: Literal["rf"]
    layer: Layer = -1


class ParamsQuestion(_Computed):
    """Trainable parameters of layer `layer`, or of the whole stack when `layer` is left out."""

    kind: Literal["params"]
    layer: Optional[Layer] = None
    bias: bool = True  # count the biases of conv / linear layers
    bn: bool = True  # count batch norm's gamma and beta


class FormulaQuestion(_Computed):
    """Another number from the stack: the jump after `layer`; how many repeats of the stack reach
    RF >= `target` (repeats_to_rf) or size <= `target` (repeats_to_size); or `expr` over the table."""

    kind: Literal["formula"]
    compute: Literal["jump", "repeats_to_rf", "repeats_to_size", "expr"]
    layer: Layer = -1
    target: Optional[Layer] = None
    expr: Optional[str] = None
    # what a student reads as the working of an `expr` key, with the numbers filled in (a jinja2 template over
    # the same names); without it the feedback gives the value alone, never the expression's source
    working: Optional[str] = None

    @model_validator(mode="after")
    def _needs(self) -> FormulaQuestion:
        if self.compute.startswith("repeats") and self.target is None:
            raise ValueError(f"compute: {self.compute} needs target: (the RF or size to reach)")
        if self.compute == "expr" and not self.expr:
            raise ValueError("compute: expr needs expr: (a jinja2 expression over table, rows, row, params)")
        return self


class ChoiceQuestion(_Question):
    """Multiple choice (options + answer: the option's letter or text) or true/false (answer: true|false)."""

    kind: Literal["choice"]
    options: Optional[list[str]] = None
    answer: Union[bool, str]
    shuffle: bool = True
    explanation: str

    @model_validator(mode="after")
    def _key(self) -> ChoiceQuestion:
        if self.options is None:
            if not isinstance(self.answer, bool):
                raise ValueError("a true/false question has answer: true or false (or give options:)")
            return self
        if isinstance(self.answer, bool):
            raise ValueError("answer: true/false is for questions without options; "
                             "give the correct option's letter or text")
        if len(self.options) < 2 or len(self.options) > 26:
            raise ValueError("options: give between 2 and 26 options")
        if len({o.strip().lower() for o in self.options}) != len(self.options):
            raise ValueError("options: two options read the same")
        if self.key_index is None:
            letters = ", ".join(chr(97 + i) for i in range(len(self.options)))
            raise ValueError(f"answer {self.answer!r} is neither an option's letter ({letters}) nor an option's text")
        return self

    @property
    def key_index(self) -> int | None:
        """Index of the correct option as written in the bank."""
        if self.options is None or isinstance(self.answer, bool):
            return None
        wanted = self.answer.strip().lower()
        for i, option in enumerate(self.options):
            if option.strip().lower() == wanted:
                return i
        letter = wanted.rstrip(").")
        if len(letter) == 1 and "a" <= letter < chr(97 + len(self.options)):
            return ord(letter) - 97
        return None


_KIND_TITLES = {"shape": "Output size", "rf": "Receptive field", "params": "Parameters",
                "jump": "Jump", "repeats_to_rf": "Layers to reach a receptive field",
                "repeats_to_size": "Layers to reach a size", "expr": "Computed from the layers"}


def default_title(question: Any) -> str:
    """The heading of a question whose bank gives no `title:`: what its kind asks for."""
    if question.kind == "choice":
        return "True or false" if question.options is None else "Multiple choice"
    return _KIND_TITLES[getattr(question, "compute", question.kind)]


Question = Annotated[Union[ShapeQuestion, RfQuestion, ParamsQuestion, FormulaQuestion, ChoiceQuestion],
                     Field(discriminator="kind")]
_MODELS: dict[str, type[BaseModel]] = {"shape": ShapeQuestion, "rf": RfQuestion, "params": ParamsQuestion,
                                       "formula": FormulaQuestion, "choice": ChoiceQuestion}


class Bank(_Strict):
    quiz: Annotated[str, Field(pattern=_ID)]
    title: str
    description: str = ""
    count: Optional[Annotated[int, Field(ge=1)]] = None
    points: Annotated[float, Field(gt=0)] = 1.0
    stacks: dict[str, Union[str, dict[str, Any]]] = {}
    questions: Annotated[list[Question], Field(min_length=1)]

    @model_validator(mode="after")
    def _count(self) -> Bank:
        if self.count is not None and self.count > len(self.questions):
            raise ValueError(f"count: {self.count} is more than the {len(self.questions)} questions in the bank")
        return self

    _doc: yamlio.LocatedYaml = PrivateAttr(default_factory=lambda: yamlio.LocatedYaml(None, "<bank>"))

    @property
    def source(self) -> str:
        return self._doc.source

    @property
    def doc(self) -> yamlio.LocatedYaml:
        return self._doc

    def index(self, question_id: str) -> int:
        return next(i for i, q in enumerate(self.questions) if q.id == question_id)

    def where(self, question_id: str, *loc: Any) -> str:
        """file:line of a question (or of one of its keys)."""
        return self._doc.where(("questions", self.index(question_id)) + loc)

    def points_of(self, question: Any) -> float:
        return question.points if question.points is not None else self.points


def bank_from_yaml(doc: yamlio.LocatedYaml) -> Bank:
    """Validate parsed YAML as a bank; the first problem is raised with its file and line."""
    if not isinstance(doc.data, dict):
        raise GraderError("a quiz bank is a mapping with quiz, title and questions", where=doc.where(()),
                          fix="start the file with `quiz: my-quiz-id`, `title: ...` and `questions:`")
    try:
        bank = Bank.model_validate(doc.data)
    except ValidationError as exc:
        raise _schema_error(exc, doc) from None
    bank._doc = doc
    _check_ids(bank)
    _check_templates(bank)
    return bank


def load_bank(path: str | Path) -> Bank:
    return bank_from_yaml(yamlio.load(path))


def _yaml_loc(loc: tuple) -> tuple:
    """A pydantic error location as a path into the YAML (without the union's kind tag)."""
    if len(loc) >= 3 and loc[0] == "questions" and loc[2] in _MODELS:
        return loc[:2] + loc[3:]
    return loc


def _fields_for(loc: tuple, doc: yamlio.LocatedYaml) -> list[str]:
    if loc and loc[0] == "questions" and len(loc) >= 2:
        item = doc.data["questions"][loc[1]] if isinstance(doc.data.get("questions"), list) else None
        kind = item.get("kind") if isinstance(item, dict) else None
        model = _MODELS.get(kind) if isinstance(kind, str) else None
        return list(model.model_fields) if model else ["id", "kind", "text"]
    return [name for name in Bank.model_fields]


def _schema_error(exc: ValidationError, doc: yamlio.LocatedYaml) -> GraderError:
    """The first problem, with its file and line; an unknown question kind names the kinds there are."""
    errors = exc.errors()
    err = errors[0]
    if err["type"] in ("union_tag_invalid", "union_tag_not_found"):
        loc = _yaml_loc(tuple(err["loc"]))
        more = f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
        got = (err.get("ctx") or {}).get("tag")
        what = f"{dotted(loc)}: unknown question kind {got!r}" if got else f"{dotted(loc)}: the question has no kind"
        return GraderError(what + more, where=doc.where(loc), fix="kind is one of: " + ", ".join(KINDS))
    return schema_error(exc, doc, keys_at=lambda loc: _fields_for(loc, doc), yaml_loc=_yaml_loc,
                        fix="see the bank format in `grade quiz --help`")


def _check_ids(bank: Bank) -> None:
    seen: dict[str, int] = {}
    for i, question in enumerate(bank.questions):
        if question.id in seen:
            raise GraderError(f"question id {question.id!r} is used twice",
                              where=bank.doc.where(("questions", i, "id")),
                              fix="ids must be unique; the first is at line "
                                  f"{bank.doc.line(('questions', seen[question.id]))}")
        seen[question.id] = i
    for name in bank.stacks:
        if not isinstance(name, str) or not name.isidentifier():
            raise GraderError(f"stack name {name!r} is not a plain name", where=bank.doc.where(("stacks", name)),
                              fix="name stacks like net400 or mnist_small")


def _strings(node: Any, loc: tuple):
    """(loc, text) for every string inside a stack written in YAML form."""
    if isinstance(node, str):
        yield loc, node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _strings(value, loc + (key,))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _strings(value, loc + (i,))


def _check_templates(bank: Bank) -> None:
    """Catch template syntax errors when the bank loads, not when a student's variant is drawn."""
    doc = bank.doc
    for name, stack in bank.stacks.items():
        for loc, text in _strings(stack, ("stacks", name)):
            template.check_syntax(text, doc.where(loc))
    for i, q in enumerate(bank.questions):
        here = ("questions", i)
        for key in ("title", "text", "explanation"):
            template.check_syntax(getattr(q, key), doc.where(here + (key,)))
        for j, option in enumerate(getattr(q, "options", None) or []):
            template.check_syntax(option, doc.where(here + ("options", j)))
        for loc, text in _strings(getattr(q, "stack", None), here + ("stack",)):
            template.check_syntax(text, doc.where(loc))
        for key in ("layer", "target"):
            value = getattr(q, key, None)
            if isinstance(value, str):
                template.check_syntax(value, doc.where(here + (key,)))
        for name, expr in q.let.items():
            template.check_expression(expr, doc.where(here + ("let", name)))
        for j, expr in enumerate(q.require):
            template.check_expression(expr, doc.where(here + ("require", j)))
        expression, working = getattr(q, "expr", None), getattr(q, "working", None)
        if expression:
            template.check_expression(expression, doc.where(here + ("expr",)))
        if working:
            template.check_syntax(working, doc.where(here + ("working",)))
