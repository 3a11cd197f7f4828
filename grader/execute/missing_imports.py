"""Imports that failed in a run, each explained by what the module is: the student's own file, a package the
grading environment lacks, or Colab.

Course notebooks import their model and helpers from `.py` files in the same repository (`from model import Net`),
and a grader that was handed only the notebook cannot tell that `model` is not a package on PyPI. So a missing
module is taken for:

- **Colab**: `google.colab`, or a path through Google Drive (`drive.MyDrive...`): it exists only on Colab;
- **handed in**: a file or folder of that name is in the hand-in beside the notebook or at its root, and the
  import still failed (the name it imports is not there); **off the path** when it lies only in a folder that is
  not on sys.path;
- **a package**: one a `pip install` cell asked for, or one of the packages course notebooks are known to use
  (`KNOWN_PACKAGES`): the instructor adds it to the grading environment;
- **a local module** otherwise: neither installed nor handed in; the student hands in the folder it is in
  (a package of that name stays possible, and the message says what to do then).

Every failed import is named, in any cell: Colab code that fails first must not hide the missing `model`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Literal

from grader.env.spec import PACKAGES_KEY, canonical_name
from grader.execute.hints import COLAB_ONLY
from grader.execute.records import CellRecord
from grader.handin import importable

Kind = Literal["local", "handed_in", "off_path", "package", "colab"]

# Import names of packages from PyPI that course notebooks use: a missing one is a package the grading environment
# lacks, never a student's file. Only what is named here or asked for by a `pip install` cell is told apart from
# a local module with certainty.
KNOWN_PACKAGES = frozenset({
    "torchsummary", "torchinfo", "torchviz", "torchvision", "torchaudio", "torchtext", "torchmetrics", "torchview",
    "torch_lr_finder", "hiddenlayer", "albumentations", "kornia", "timm", "einops", "lightning", "pytorch_lightning",
    "tqdm", "numpy", "pandas", "matplotlib", "seaborn", "plotly", "sklearn", "skimage", "scipy", "PIL", "cv2",
    "keras", "tensorflow", "tensorflow_datasets", "keras_core", "jax", "flax", "wandb", "tensorboard", "tensorboardX",
    "mlflow", "optuna", "gdown", "kaggle", "rich", "ipywidgets", "graphviz", "onnx", "onnxruntime", "netron",
    "grad_cam", "pytorch_grad_cam", "torchcam", "captum",
})
_DRIVE_ROOTS = ("drive", "MyDrive", "content")
_NOT_FOUND = re.compile(r"ModuleNotFoundError: No module named '([\w.]+)'")


@dataclass(frozen=True)
class FailedImport:
    cell: int  # the code cell, counted from 1
    module: str  # as the error names it: 'model', 'models.resnet', 'google.colab'
    kind: Kind
    top: str  # the name a plain import of the student's file would use: 'model' for 'drive.MyDrive.nb.model'
    files: tuple[str, ...] = ()  # the staged files of that name

    @property
    def said(self) -> str:
        return f"code cell {self.cell} imports `{self.module}`"


def missing_module(error: str) -> str | None:
    """The module a ModuleNotFoundError names, e.g. 'torchsummary'."""
    match = _NOT_FOUND.search(error)
    return match[1] if match else None


def failed_imports(cells: Iterable[CellRecord], *, handed_in: Sequence[str] = (), notebook_dir: str = "",
                   pip_asked: Iterable[str] = ()) -> list[FailedImport]:
    """Each module a failed cell could not import, once (the first cell that tried), in cell order, with its kind.
    `handed_in`: the staged files' paths relative to the hand-in's root; `pip_asked`: packages `pip install` named."""
    importable_names = set(importable(handed_in, notebook_dir))
    asked = {canonical_name(p) for p in pip_asked}
    found: dict[str, FailedImport] = {}
    for cell in cells:
        module = missing_module(cell.error or "") if cell.status == "error" else None
        if module is None or module in found:
            continue
        top = module.split(".")[0]
        if top in _DRIVE_ROOTS:  # through Google Drive: the module is the last name
            top = module.split(".")[-1]
        files = tuple(p for p in handed_in if _names(p, top))
        if module.startswith("google.colab") or module.split(".")[0] in _DRIVE_ROOTS:
            kind: Kind = "colab"
        elif files:
            kind = "handed_in" if top in importable_names else "off_path"
        elif canonical_name(top) in asked or top in KNOWN_PACKAGES:
            kind = "package"
        else:
            kind = "local"
        found[module] = FailedImport(cell.number, module, kind, top, files)
    return list(found.values())


def _names(path: str, top: str) -> bool:
    """Whether the staged file at `path` is the module `top` or lies in a folder of that name."""
    parts = PurePosixPath(path).parts
    return PurePosixPath(path).name == f"{top}.py" or top in parts[:-1]


def explain(failed: Sequence[FailedImport], *, notebook_dir: str = "") -> str:
    """One sentence per kind, local modules first (the likeliest cause), naming every failed import."""
    sentences = []
    local = [f for f in failed if f.kind == "local"]
    if local:
        many = len(local) > 1
        sentences.append(
            f"{_and([f.said for f in local])}, which {'are' if many else 'is'} neither in the grading environment "
            f"nor {'files' if many else 'a file'} handed in with the notebook: hand in the repo link, or the folder "
            f"with {_and([f'{f.top}.py' for f in _unique_tops(local)])} (if {'one is' if many else 'it is'} a package "
            f"instead, the instructor adds it under `{PACKAGES_KEY}` in the rubric and runs `grade env build RUBRIC`)")
    for f in failed:
        if f.kind in ("handed_in", "off_path"):
            sentences.append(_handed_in(f, notebook_dir))
    packages = [f for f in failed if f.kind == "package"]
    if packages:
        many = len(packages) > 1
        sentences.append(
            f"{_and([f.said for f in packages])}, which the grading environment does not have (if the assignment "
            f"needs {'them' if many else 'it'}, the instructor adds {'the packages' if many else 'the package'} "
            f"under `{PACKAGES_KEY}` in the rubric and runs `grade env build RUBRIC`)")
    for f in failed:
        if f.kind == "colab" and f.module.startswith("google.colab"):
            sentences.append(f"{f.said}; {COLAB_ONLY}")
        elif f.kind == "colab":
            handed = f" ({_and([f'`{p}`' for p in f.files])} is handed in)" if f.files else \
                f" and hand in {f.top}.py with the notebook"
            sentences.append(f"{f.said}, a path in Google Drive, which exists only on Colab: import `{f.top}` by its "
                             f"own name{handed}")
    return "; ".join(sentences)


def _handed_in(f: FailedImport, notebook_dir: str) -> str:
    files = _and([f"`{p}`" for p in f.files])
    verb = "is" if len(f.files) == 1 else "are"
    if f.kind == "off_path":
        folders = f"the notebook's folder (`{notebook_dir}`) and the hand-in's root are" if notebook_dir else \
            "the hand-in's root (the notebook's folder) is"
        return (f"{f.said}; {files} {verb} handed in, but only {folders} on sys.path: move {f.top}.py beside the "
                "notebook, or import it through its folder")
    return (f"{f.said}; {files} {verb} handed in with the notebook, yet the import failed: check that `{f.module}` "
            "names a file or folder that is there, and that the notebook does not change sys.path before it")


def _unique_tops(failed: Sequence[FailedImport]) -> list[FailedImport]:
    seen: dict[str, FailedImport] = {}
    for f in failed:
        seen.setdefault(f.top, f)
    return list(seen.values())


def _and(parts: Sequence[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
