"""How the raw test digits become model inputs: the record the execute stage probes and the evaluation replays."""

from __future__ import annotations

from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from grader.data.transforms import STEPS, Step


class Preprocess(BaseModel):
    """The test-time transform: an affine map x -> scale * x/255 + shift per pixel, torchvision transforms the
    grader knows (`steps`, replayed in the clean process), or something else (not replayed)."""

    model_config = ConfigDict(extra="ignore")  # probed inside the sandbox: read leniently, validated strictly

    kind: Literal["affine", "transforms", "other"]
    scale: Optional[float] = None
    shift: Optional[float] = None
    steps: Optional[list[Step]] = None  # kind transforms: the steps, as plain data (grader.data.transforms)
    source: str = ""  # where it was read from (the test dataset's transform, an assumption, ...)
    reason: Optional[str] = None  # why it is not affine
    residual: Optional[float] = None  # largest deviation from the fitted affine map

    @model_validator(mode="before")
    @classmethod
    def _steps_or_other(cls, data: Any) -> Any:
        """Steps outside their bounds (a Resize to 10,000 pixels, ...) make the transform one the grader does not
        replay, said in `reason`, instead of a harness record that cannot be read."""
        if not isinstance(data, dict) or data.get("kind") != "transforms":
            return data
        try:
            STEPS.validate_python(data.get("steps"))
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(str(p) for p in error["loc"][1:] if not ("-" in str(p) or "[" in str(p)))  # union tags
            return {**data, "kind": "other", "steps": None,
                    "reason": f"a torchvision transform the grader cannot replay ({where}: {error['msg']})"}
        return data


# The course's Normalize((0.1307,), (0.3081,)) after ToTensor(): what an exported model without notes expects.
COURSE_PREPROCESS = Preprocess(kind="affine", scale=1 / 0.3081, shift=-0.1307 / 0.3081,
                               source="assumed for an exported model: ToTensor + Normalize((0.1307,), (0.3081,))")
