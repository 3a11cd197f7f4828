"""Every run limit and option, defined once: its name, default, unit, help text, rubric key and flag.

`RunLimits` is the one record of what a run may use. The rubric's `limits:`
keys (`rubric_limits_model`), the command-line flags (`LIMIT_FLAGS`), the
execute and evaluate jobs and the sandbox spec are all derived from it, so a
new limit is one field here plus the place that enforces it.

Sizes are written like 6G, 800M or 1.5G (`parse_size`); seconds and counts are
plain numbers. This module imports nothing from the rest of the grader but
its error type: every layer may read it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any, Literal, Optional

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, create_model, field_validator, model_validator

from grader.errors import GraderError
from grader.schema_errors import invalid

Mode = Literal["static", "evaluate", "execute"]
Gpu = Literal["no", "wanted", "required"]
Unit = Literal["seconds", "size", "count"]

_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?\s*", re.I)
_FACTOR = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(text: str, where: str = "--memory") -> int:
    """'6G' -> 6442450944; '800M', '1.5G', '512K', '1024' (bytes). GraderError names `where` otherwise."""
    match = _SIZE.fullmatch(str(text))
    if not match:
        raise GraderError(f"{text!r} is not a size", where=where, fix="write it like 4G, 800M or 1.5G")
    return int(float(match[1]) * _FACTOR[match[2].upper()])


def show_size(size: int) -> str:
    """6442450944 -> '6G'; 1610612736 -> '1.5G' (the form parse_size reads)."""
    for suffix in ("T", "G", "M", "K"):
        if size >= _FACTOR[suffix]:
            return f"{size / _FACTOR[suffix]:g}{suffix}"
    return str(size)


def _limit(default: Any, *, unit: Unit, rubric: str, flag: str, help: str) -> Any:
    return Field(default, gt=0, description=help, json_schema_extra={"unit": unit, "rubric": rubric, "flag": flag})


class RunLimits(BaseModel):
    """What one submission may use while it is graded. Every default is here and nowhere else."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    wall_seconds: float = _limit(
        1800, unit="seconds", rubric="time", flag="--timeout",
        help="wall-clock limit for the whole notebook; the process tree is killed at the limit")
    cell_seconds: Optional[float] = _limit(
        None, unit="seconds", rubric="cell_time", flag="--cell-timeout",
        help="limit for any one cell (default: the whole wall-clock limit)")
    memory_bytes: int = _limit(
        6 << 30, unit="size", rubric="memory", flag="--memory",
        help="memory for the kernel and its data loaders (a cgroup where the host allows one)")
    max_processes: int = _limit(
        512, unit="count", rubric="processes", flag="--processes",
        help="processes and threads at once (a pids cgroup)")
    max_file_bytes: int = _limit(
        1 << 30, unit="size", rubric="file_size", flag="--file-size",
        help="largest single file the notebook may write")
    disk_bytes: int = _limit(
        2 << 30, unit="size", rubric="disk", flag="--disk",
        help="all files the notebook keeps in its scratch folder, together, deleted ones it holds open included "
             "(its own file system, where the host allows one)")
    disk_files: int = _limit(
        10_000, unit="count", rubric="disk_files", flag="--disk-files",
        help="files, folders and links the notebook may keep in its scratch folder at once, empty ones included")
    output_bytes: int = _limit(
        8 << 20, unit="size", rubric="output", flag="--max-output",
        help="what the notebook's cells may print in all; the run stops beyond it")
    eval_seconds: float = _limit(
        600, unit="seconds", rubric="eval_time", flag="--eval-timeout",
        help="wall-clock limit for measuring the exported model on the test images")
    cpus: Optional[int] = _limit(
        None, unit="count", rubric="cpus", flag="--cpus",
        help="cores each submission may use: its threads (OMP/MKL/torch), a CPU cgroup quota where the host "
             "allows one, and its DataLoader workers (default: this machine's cores shared by the submissions "
             "graded at once; 1 per Ray task)")
    jobs_per_gpu: int = _limit(
        1, unit="count", rubric="jobs_per_gpu", flag="--jobs-per-gpu",
        help="submissions sharing one GPU at once; a small MNIST net leaves a GPU mostly idle, so 4-8 pack well")

    def check_cells(self) -> RunLimits:
        if self.cell_seconds is not None and self.cell_seconds > self.wall_seconds:
            raise GraderError(f"the cell limit ({self.cell_seconds:g} s) is longer than the whole run's "
                              f"({self.wall_seconds:g} s)", where="limits",
                              fix="a cell cannot run longer than the notebook: lower the cell limit or leave it out")
        return self

    def with_cpus_for(self, slots: int) -> RunLimits:
        """`cpus` as given, or this machine's cores shared by `slots` submissions at once (at least 1)."""
        if self.cpus is not None:
            return self
        return self.model_copy(update={"cpus": max(1, (os.cpu_count() or 1) // max(1, slots))})

    @property
    def cell_limit(self) -> float:
        return self.cell_seconds or self.wall_seconds

    def describe(self) -> str:
        """'time 3,600 s, memory 6G, processes 512, ...' with each limit under its rubric key."""
        shown = []
        for limit in LIMITS:
            value = getattr(self, limit.name)
            if value is not None:
                shown.append(f"{limit.rubric} " + (show_size(value) if limit.unit == "size" else
                                                     f"{value:g} s" if limit.unit == "seconds" else f"{value:g}"))
        return ", ".join(shown)


@dataclass(frozen=True)
class LimitField:
    """One limit as the front ends see it."""

    name: str  # the RunLimits field
    rubric: str  # the key under a rubric's `limits:`
    flag: str  # the command-line flag
    unit: Unit
    help: str
    default: Any

    def parse(self, value: Any, where: str) -> Any:
        """A value as written (a number, or a size like 4G) -> the field's value; GraderError if it is wrong."""
        if value is None:
            return None
        number: float  # an int for a size or a count
        if self.unit == "size":
            number = parse_size(str(value), where)
        else:
            try:
                number = float(value) if self.unit == "seconds" else int(value)
            except (TypeError, ValueError):
                raise GraderError(f"{value!r} is not a number", where=where,
                                  fix=f"give {self.unit}, e.g. {self.example}") from None
        if number <= 0:
            raise GraderError(f"{value!r} must be positive", where=where, fix=f"give {self.unit}, e.g. {self.example}")
        return number

    @property
    def example(self) -> str:
        if self.unit == "size":
            return f"{self.flag} {show_size(self.default or 1 << 30)}"
        return f"{self.flag} {self.default if self.default is not None else 600:g}"

    @property
    def shown_default(self) -> str:
        if self.default is None:
            return "none"
        return show_size(self.default) if self.unit == "size" else f"{self.default:g}"


def _fields() -> tuple[LimitField, ...]:
    out = []
    for name, info in RunLimits.model_fields.items():
        extra = info.json_schema_extra
        assert isinstance(extra, dict), f"RunLimits.{name} is declared with _limit(): its unit, rubric key and flag"
        declared: dict[str, Any] = extra  # as _limit() wrote them
        out.append(LimitField(name=name, rubric=declared["rubric"], flag=declared["flag"], unit=declared["unit"],
                              help=info.description or "", default=info.default))
    return tuple(out)


LIMITS: tuple[LimitField, ...] = _fields()


def limits_from(values: dict[str, Any], *, base: RunLimits | None = None, key: str = "flag") -> RunLimits:
    """RunLimits from written values keyed by flag or rubric key (None: keep `base`'s); errors name the key."""
    update = {}
    for limit in LIMITS:
        name = getattr(limit, key)
        if values.get(name) is not None:
            update[limit.name] = limit.parse(values[name], name)
    # every value went through LimitField.parse (type, unit, > 0): the copy needs no second validation
    return (base or RunLimits()).model_copy(update=update).check_cells()


# --- the rubric's `limits:` mapping, generated from RunLimits ---------------------------------------------------

class _RubricLimitsBase(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    gpu: Gpu = Field("wanted", description="no | wanted (use one when present) | required")

    @field_validator("gpu", mode="before")
    @classmethod
    def _yaml_no(cls, value: Any) -> Any:
        if value is False:  # YAML reads a bare `no` as false
            return "no"
        if value is True:
            raise invalid("gpu: true is ambiguous",
                          fix="use one of: 'no', 'wanted' (use one when present) or 'required'")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> _RubricLimitsBase:
        limits = vars(self)  # the fields create_model() adds below, one per limit: read by their rubric keys
        time, cell_time = limits["time"], limits["cell_time"]
        if cell_time is not None and cell_time > time:
            raise invalid(f"cell_time {cell_time:g} is longer than time {time:g}",
                          fix="a cell cannot run longer than the whole notebook; lower cell_time or leave it out",
                          at=("cell_time",))
        return self

    def run_limits(self) -> RunLimits:
        return limits_from({limit.rubric: getattr(self, limit.rubric) for limit in LIMITS}, key="rubric")

    def gpu_option(self) -> Optional[bool]:
        return {"no": False, "wanted": None, "required": True}[self.gpu]


def _size_text(value: str) -> str:
    if not _SIZE.fullmatch(value):
        raise invalid(f"{value!r} is not a size", fix="write it like 6G, 4G or 800M")
    return value


def _rubric_field(limit: LimitField) -> tuple[Any, Any]:
    if limit.unit == "size":
        return Optional[Annotated[str, AfterValidator(_size_text)]], Field(show_size(limit.default),
                                                                          description=limit.help)
    kind = float if limit.unit == "seconds" else int
    return Optional[Annotated[kind, Field(gt=0, strict=kind is int)]], Field(limit.default, description=limit.help)


_RUBRIC_FIELDS: dict[str, Any] = {limit.rubric: _rubric_field(limit) for limit in LIMITS}
RubricLimits = create_model("Limits", __base__=_RubricLimitsBase, **_RUBRIC_FIELDS)


# --- options of one grading run -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Options:
    """How to grade: the depth, where MNIST is, the model's variable, the limits, the sandbox and the GPU."""

    mode: Mode = "execute"
    data: Optional[str] = None  # MNIST folder (None: $GRADER_DATA, then the cache)
    variable: str = "model"  # the notebook variable that holds the network
    limits: RunLimits = field(default_factory=RunLimits)
    dry_run: bool = False  # run the code once: loaders yield two batches of fixed images on one pass (one epoch)
    sandbox: bool = True  # False: trusted code only, runs with the grader's permissions
    gpu: Optional[bool] = None  # None: when /dev/nvidia* exist
    gpu_index: Optional[int] = None  # which GPU (a pool assigns one per slot)
    keep: Optional[Path] = None  # copy the executed notebook and the exported model here
    environment: Optional[Path] = None  # the grading environment's venv the kernel runs in (None: the grader's Python)
    compat: tuple[str, ...] = ()  # compat profiles whose shims load before the student's first cell
    variable_named: bool = False  # the rubric or --variable named `variable`; else the model training updated is graded
    unseen: bool = False  # also measure on QMNIST's 50,000 digits beyond MNIST (downloaded on first use)
    # Measure in the warm evaluator (a zygote per test set, kept by this process): pays off from a class's second
    # submission on, so a class or a service sets it; `grade check` sets it too, starting the zygote while the
    # notebook runs (pipeline: prestart_evaluator), so that its torch import overlaps the kernel's.
    warm: bool = False

    def with_(self, **changes: Any) -> Options:
        """A copy with the given fields replaced, None included: `with_(gpu=None)` asks for a GPU when present."""
        return replace(self, **changes)

    def with_overrides(self, **overrides: Any) -> Options:
        """A copy with the fields given a value replaced; None keeps this one (a front end's flag left unset)."""
        return self.with_(**{k: v for k, v in overrides.items() if v is not None})
