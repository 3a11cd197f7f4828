"""The typed records the sandboxed run hands back: run.json (the runner) and harness.json (the kernel harness).

Both come from inside the sandbox, where student code ran: the host validates
them here and trusts them for the verdict and the training counters only,
never for the score. A record that does not validate is reported as such
(`malformed`), not half-read.
"""

from __future__ import annotations

from typing import Literal, Optional, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from grader.data.preprocess import Preprocess
from grader.sandbox.readback import Folder, Kind, Missing, ReadbackError

CellStatus = Literal["ok", "error", "timeout", "not_run"]
# the names the harness saves a model under, in the output folder: a record can only choose among them
ModelFile = Literal["model.pt2", "model.keras"]


class _Record(BaseModel):
    model_config = ConfigDict(extra="ignore")


class CellRecord(_Record):
    index: int  # position among all cells of the student's notebook, 0-based (for the runner)
    number: int  # the code cell as a student counts it: code cells only, from 1 (for every message and fact)
    status: CellStatus
    seconds: float = 0.0
    error: Optional[str] = None  # "ErrorName: message"
    traceback: Optional[str] = None


class RunRecord(_Record):
    """What the runner saw while nbclient executed the cells."""

    cells: list[CellRecord] = []
    output_limit_hit: bool = False
    output_bytes: int = 0
    kernel_died: Optional[str] = None
    harness_error: Optional[str] = None
    seconds: float = 0.0


class Counters(_Record):
    """The harness's counts, kept in the student's process: its code can change every one of them
    (grader.epochs_check sets them against the exported model's own counters)."""

    optimizer_steps: Optional[int] = None
    samples_seen: Optional[int] = None  # handed out by DataLoaders while gradients were on
    epochs: Optional[float] = None  # samples_seen / train_size
    train_size: Optional[int] = None
    batches_per_epoch: Optional[int] = None  # len() of the training set's DataLoader
    no_grad_batches: Optional[int] = None  # handed out by DataLoaders while gradients were off
    optimizer_state_steps: Optional[int] = None  # the largest `step` in the optimizers' own state (None: SGD)
    seconds: Optional[float] = None
    device: Optional[str] = None
    dry_passes_emptied: int = 0  # a dry run: loader passes that yielded nothing, the loader's one full pass done


class Params(_Record):
    trainable: int
    total: int


class Export(_Record):
    path: Literal["export", "keras", "none"]  # none: nothing captured the model (not_exportable)
    file: Optional[ModelFile] = None  # one of the fixed names in the output folder, never a path
    batch: Optional[int] = None  # the one batch size an export was pinned to
    reasons: list[str] = []  # why the better paths failed
    layout: Optional[Literal["nhwc", "nchw", "nhw", "flat"]] = None  # keras: how the model takes a digit


class TrainedModel(_Record):
    variable: str  # the notebook variable or item (`models['ln']`); for none, where it was trained (execute.trained)
    kind: str  # "optimizer step" or "fit"
    updates: int
    share: float  # the part of the module's parameters those updates reached


class PipAsk(_Record):
    package: str
    version: Optional[str] = None  # what the grading environment has; None: it lacks it


class CpuBudget(_Record):
    cpus: int  # the run's budget in cores (GRADER_CPUS)
    threads: dict[str, int] = {}  # pool -> threads after the student's cells (torch, torch_interop, tensorflow)
    notes: list[str] = []  # what the harness changed to keep to it (DataLoader workers)


class HarnessRecord(_Record):
    """What the kernel harness found after the student's cells."""

    counters: Counters = Counters()
    model_found: Optional[str] = None  # how the model was found, or why none was
    model_variable: Optional[str] = None
    params: Optional[Params] = None
    preprocess: Optional[Preprocess] = None
    bad_model: Optional[str] = None
    export: Optional[Export] = None
    model_error: Optional[str] = None  # the harness itself failed
    model_traceback: Optional[str] = None
    trained_models: list[TrainedModel] = []  # most recent first
    compat_used: list[str] = []  # grader.execute.compat shims the notebook went through
    compat_skipped: list[str] = []  # shims of the rubric's profiles that could not be installed, and why
    pip_asked: list[PipAsk] = []  # packages `pip install` cells named
    cpu_budget: Optional[CpuBudget] = None  # None: the run had no CPU budget (grader.execute.cpu_budget)


_R = TypeVar("_R", bound=_Record)


def read_record(folder: Folder, name: str, kind: type[_R]) -> tuple[Optional[_R], Optional[str]]:
    """(record, None); (None, None) when the file is missing; (None, why) when it is there but malformed, or not
    a file the host reads (a FIFO, a link, over the records' cap: grader.sandbox.readback)."""
    try:
        text = folder.read(name, Kind.RECORD)
    except Missing:
        return None, None
    except ReadbackError as err:
        return None, not_taken(str(err), folder.where)
    try:
        return kind.model_validate_json(text), None
    except ValidationError as exc:
        return None, not_taken(f"{name} in {folder.where} is malformed: {exc.errors()[0]['msg']} at "
                               f"{exc.errors()[0]['loc']}", folder.where)


def not_taken(problem: str, where: str) -> str:
    """Why a record from the output folder `where` was not taken, and what to do about it."""
    return f"{problem}; the output folder is the grader's: leave {where} to it"
