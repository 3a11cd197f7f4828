"""The torchvision test transforms the grader knows, as plain data: read in the sandbox, replayed in the clean process.

A test transform that is not a per-pixel affine map (a Resize, a Pad, ...) is not run where student code runs
to make the test inputs. Instead `read_transform` writes down what it is, class names and constructor
arguments as numbers and strings (never the objects), and `build` makes the same transform again from the
genuine torchvision classes in the clean process, applied to the raw IDX digits. Only the classes of
`VOCABULARY` are read; anything else (a `Lambda`, a subclass, a student's own class) is outside it, and
the verdict says so. What a step's arguments may be is bounded (`Step`): plain data cannot carry labels,
and the bounds keep 10,000 transformed images within the clean process's memory.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

# torchvision.transforms (v1) classes the grader replays; Compose of these is flattened into its steps
VOCABULARY = ("ToTensor", "Normalize", "Resize", "CenterCrop", "Pad", "Grayscale", "ConvertImageDtype")
SHOWN = "ToTensor, Normalize, Resize, CenterCrop, Pad, Grayscale, ConvertImageDtype, and Compose of these"
_MODULE = "torchvision.transforms.transforms"  # where the v1 classes live (torchvision.transforms re-exports them)
MAX_SIDE = 256  # pixels: an image side a Resize or CenterCrop may ask for
MAX_PAD = 64

Side = Annotated[int, Field(ge=1, le=MAX_SIDE)]


class _Step(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ToTensor(_Step):
    name: Literal["ToTensor"] = "ToTensor"


class Normalize(_Step):
    name: Literal["Normalize"] = "Normalize"
    mean: list[float] = Field(min_length=1, max_length=3)
    std: list[Annotated[float, Field(gt=0)]] = Field(min_length=1, max_length=3)


class Resize(_Step):
    name: Literal["Resize"] = "Resize"
    size: Union[Side, Annotated[list[Side], Field(min_length=1, max_length=2)]]
    interpolation: Literal["nearest", "nearest-exact", "bilinear", "bicubic", "box", "hamming", "lanczos"] = "bilinear"
    max_size: Optional[Side] = None
    antialias: Optional[bool] = True


class CenterCrop(_Step):
    name: Literal["CenterCrop"] = "CenterCrop"
    size: Annotated[list[Side], Field(min_length=1, max_length=2)]


class Pad(_Step):
    name: Literal["Pad"] = "Pad"
    padding: Union[Annotated[int, Field(ge=0, le=MAX_PAD)],
                   Annotated[list[Annotated[int, Field(ge=0, le=MAX_PAD)]], Field(min_length=1, max_length=4)]]
    fill: Union[float, Annotated[list[float], Field(min_length=1, max_length=3)]] = 0
    padding_mode: Literal["constant", "edge", "reflect", "symmetric"] = "constant"


class Grayscale(_Step):
    name: Literal["Grayscale"] = "Grayscale"
    num_output_channels: Literal[1, 3] = 1


class ConvertImageDtype(_Step):
    name: Literal["ConvertImageDtype"] = "ConvertImageDtype"
    dtype: Literal["float32", "float64", "float16", "bfloat16"]


Step = Annotated[Union[ToTensor, Normalize, Resize, CenterCrop, Pad, Grayscale, ConvertImageDtype],
                 Field(discriminator="name")]
STEPS = TypeAdapter(list[Step])


def _plain(value: Any) -> Any:
    """Numbers, strings, booleans and lists of them; anything else (a tensor, an object) raises."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if type(value).__name__ == "InterpolationMode":
        return str(value.value)
    if type(value).__name__ == "dtype":  # torch.float32 -> "float32"
        return str(value).removeprefix("torch.")
    if hasattr(value, "tolist") and getattr(value, "ndim", 2) <= 1:  # a small tensor or array of mean / std
        return _plain(value.tolist())
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    raise ValueError(f"an argument of type {type(value).__name__}")


_ARGS = {"ToTensor": (), "Normalize": ("mean", "std"), "Resize": ("size", "interpolation", "max_size", "antialias"),
         "CenterCrop": ("size",), "Pad": ("padding", "fill", "padding_mode"), "Grayscale": ("num_output_channels",),
         "ConvertImageDtype": ("dtype",)}


def read_transform(transform: Any) -> tuple[Optional[list[dict[str, Any]]], Optional[str]]:
    """(steps as plain dicts, None) when every part of `transform` is in the vocabulary; (None, what is not)."""
    steps: list[dict[str, Any]] = []
    pending = [transform]
    while pending:
        part = pending.pop(0)
        cls = type(part)
        if cls.__name__ == "Compose" and cls.__module__ == _MODULE:
            pending[:0] = list(part.transforms)
            continue
        if cls.__name__ not in VOCABULARY or cls.__module__ != _MODULE:
            where = "" if cls.__module__ == _MODULE else f" (from {cls.__module__})"
            return None, f"`{cls.__name__}`{where} is outside the transforms the grader replays ({SHOWN})"
        try:
            args = {name: _plain(getattr(part, name)) for name in _ARGS[cls.__name__]}
        except (AttributeError, ValueError) as exc:
            return None, f"the arguments of `{cls.__name__}` cannot be read as plain data ({exc})"
        steps.append({"name": cls.__name__, **args})
    return steps, None


def describe(steps: list[Any]) -> str:
    """'ToTensor() -> Resize(size=32) -> Normalize(mean=[0.1307], std=[0.3081])'."""
    def one(step: Any) -> str:
        is_model = isinstance(step, BaseModel)
        args = step.model_dump(exclude={"name"}, exclude_defaults=True) if is_model else {
            k: v for k, v in step.items() if k != "name"}
        return f"{step.name if is_model else step['name']}(" + ", ".join(
            f"{k}={v}" for k, v in args.items()) + ")"
    return " -> ".join(one(s) for s in steps)


def build(steps: list[Step]) -> Callable[[Any], Any]:
    """The transform again, from torchvision's own classes: uint8 28x28 array -> float tensor (C, H, W).

    Runs in the clean process. Raises ValueError when the steps do not end in a floating-point tensor."""
    import numpy as np
    import torch
    from PIL import Image
    from torchvision import transforms as T

    made = []
    for step in steps:
        if isinstance(step, ToTensor):
            made.append(T.ToTensor())
        elif isinstance(step, Normalize):
            made.append(T.Normalize(step.mean, step.std))
        elif isinstance(step, Resize):
            made.append(T.Resize(step.size, interpolation=T.InterpolationMode(step.interpolation),
                                 max_size=step.max_size, antialias=step.antialias))
        elif isinstance(step, CenterCrop):
            made.append(T.CenterCrop(step.size))
        elif isinstance(step, Pad):
            made.append(T.Pad(step.padding, fill=tuple(step.fill) if isinstance(step.fill, list) else step.fill,
                              padding_mode=step.padding_mode))
        elif isinstance(step, Grayscale):
            made.append(T.Grayscale(step.num_output_channels))
        else:
            made.append(T.ConvertImageDtype(getattr(torch, step.dtype)))
    composed = T.Compose(made)

    def apply(image: np.ndarray) -> torch.Tensor:
        out = composed(Image.fromarray(image, mode="L"))
        if not isinstance(out, torch.Tensor) or not out.is_floating_point() or out.dim() != 3:
            got = (type(out).__name__ if not isinstance(out, torch.Tensor)
                   else f"a {out.dtype} tensor of shape {tuple(out.shape)}")
            raise ValueError(f"the test transform {describe(steps)} gives {got}, "
                             "not a floating-point image tensor (C, H, W): it needs ToTensor")
        return out

    return apply
