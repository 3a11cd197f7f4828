"""How the raw test digits become model inputs: the record the execute stage probes and the evaluation replays."""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict


class Preprocess(BaseModel):
    """The test-time transform: an affine map x -> scale * x/255 + shift per pixel, or something else."""

    model_config = ConfigDict(extra="ignore")  # probed inside the sandbox: read leniently, validated strictly

    kind: Literal["affine", "other"]
    scale: Optional[float] = None
    shift: Optional[float] = None
    source: str = ""  # where it was read from (the test dataset's transform, an assumption, ...)
    reason: Optional[str] = None  # why it is not affine
    residual: Optional[float] = None  # largest deviation from the fitted affine map


# The course's Normalize((0.1307,), (0.3081,)) after ToTensor(): what an exported model without notes expects.
COURSE_PREPROCESS = Preprocess(kind="affine", scale=1 / 0.3081, shift=-0.1307 / 0.3081,
                               source="assumed for an exported model: ToTensor + Normalize((0.1307,), (0.3081,))")
