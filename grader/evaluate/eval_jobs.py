"""The jobs the host hands a clean evaluation: built by grader.evaluate.job / keras_job, serialised as JSON, read
back with validation by the process that measures (grader.evaluate.clean, keras_clean, zygote).

A field unknown, missing or of the wrong type stops that process before it reads the model. These run inside the
sandbox too (the Keras one with the grading environment's Python, which sees the grader's site-packages), so this
module imports pydantic and nothing of the grader.
"""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, model_validator


class _Job(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EvalJob(_Job):
    """An exported torch model to measure (grader.evaluate.clean). Paths are as the evaluation sees them."""

    model_file: str
    images_file: str  # uint8 (N, 28, 28)
    out_dir: str
    scale: Optional[float] = None  # preprocessing x -> scale * x/255 + shift, the only inputs the grader makes
    shift: Optional[float] = None
    steps: Optional[list[dict]] = None  # or torchvision steps the grader knows, built again there from plain data
    static_batch: Optional[int] = None
    device: str = "auto"
    predict: bool = True  # False: read the structure only (a dry run has nothing trained to measure)
    unseen_images_file: Optional[str] = None  # uint8 (N, 28, 28): QMNIST's digits beyond MNIST, predicted alike


class KerasJob(_Job):
    """A saved Keras model to measure with the grading environment's Python (grader.evaluate.keras_clean)."""

    model_file: str
    images_file: str
    out_dir: str
    layout: Optional[Literal["nhwc", "nchw", "nhw", "flat"]]  # the input shape the model takes, as the harness found it
    scale: float
    shift: float
    predict: bool  # False: read the structure only (a dry run)


class WarmJob(_Job):
    """One child of the warm evaluator's zygote (grader.evaluate.zygote): what it measures and its limits. The
    files come as descriptors with the message; the paths in `measure` are not opened."""

    measure: Optional[EvalJob] = None
    script: Optional[list[str]] = None  # instead: run the file given as the model with this argv (the tests' probes)
    cpus: int  # torch's threads in the child
    file_bytes: int  # RLIMIT_FSIZE
    cpu_seconds: int  # RLIMIT_CPU: a clock its parent's death cannot stop
    rlimit_memory: Optional[int] = None  # RLIMIT_AS, where no cgroup holds the memory limit
    tmp_bytes: int = 256 << 20  # the child's own /tmp

    @model_validator(mode="after")
    def _one_task(self) -> WarmJob:
        if (self.measure is None) == (self.script is None):
            raise ValueError("a warm job either measures a model or runs a script: give one of measure and script")
        return self
