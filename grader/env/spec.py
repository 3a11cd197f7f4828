"""What a grading environment is: the rubric's `environment:` key, its requirements, and its content hash.

The grading environment is the Python the student's kernel runs in, one per
assignment, separate from the grader's own. It is written in the rubric:

    environment:
      packages: [keras>=3, "pandas==2.2.3"]   # added to the default packages (the rubric's pin wins)
      requirements: requirements.txt          # or a pip requirements file, relative to the rubric
      compat: [torch-1.x, keras-2]            # shims for APIs the course used then (grader.execute.compat)

Pure: no files are written and nothing runs here (`grader.env.build` does that).
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from pathlib import Path
from typing import Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator

from grader.errors import GraderError
from grader.schema_errors import invalid

# What course notebooks import besides torch (torch itself, and the grader's kernel side, come from
# the grader's interpreter: one copy of PyTorch, the version the exported graph is read with).
DEFAULT_PACKAGES: tuple[str, ...] = (
    "torchvision", "torchsummary", "tqdm", "matplotlib", "numpy", "pandas", "scikit-learn", "scikit-image",
    "seaborn", "Pillow",
)

# The compat profiles grader.execute.compat knows; each is a list of small shims (see that package).
COMPAT_PROFILES: tuple[str, ...] = ("torch-1.x", "keras-1", "keras-2", "torch-2.x", "colab", "tf-keras")

PACKAGES_KEY = "environment: packages:"  # the rubric key a message tells an instructor to edit

_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
_REQUIREMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(\[[A-Za-z0-9_,.-]+\])?\s*"
                          r"((===?|~=|!=|<=?|>=?)\s*[A-Za-z0-9.*+!_-]+"
                          r"\s*(,\s*(===?|~=|!=|<=?|>=?)\s*[A-Za-z0-9.*+!_-]+\s*)*)?$")


def canonical_name(requirement: str) -> str:
    """'Scikit_Learn>=1.4' -> 'scikit-learn' (PEP 503 normalised), the name pip and metadata agree on."""
    match = _NAME.match(requirement)
    return re.sub(r"[-_.]+", "-", match[1]).lower() if match else requirement.strip().lower()


class EnvironmentSpec(BaseModel):
    """The rubric's `environment:`; every key optional (no key at all: the default environment)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    packages: list[str] = Field(default_factory=list, description="pip requirements added to the default packages")
    requirements: Optional[str] = Field(None, description="a pip requirements file, relative to the rubric's folder")
    compat: list[str] = Field(default_factory=list, description="compat profiles: " + ", ".join(COMPAT_PROFILES))

    @field_validator("packages")
    @classmethod
    def _packages(cls, packages: list[str]) -> list[str]:
        for i, line in enumerate(packages):
            if not _REQUIREMENT.match(line.strip()):
                raise invalid(f"{line!r} is not a package requirement", at=(i,),
                              fix="write a name with an optional version, like pandas, keras>=3 or numpy==1.26.4")
        return [line.strip() for line in packages]

    @field_validator("compat")
    @classmethod
    def _compat(cls, profiles: list[str]) -> list[str]:
        for i, name in enumerate(profiles):
            if name not in COMPAT_PROFILES:
                raise invalid(f"{name!r} is not a compat profile", at=(i,),
                              fix="use one of " + ", ".join(COMPAT_PROFILES))
        return profiles


DEFAULT_ENVIRONMENT = EnvironmentSpec()


def requirements_of(spec: EnvironmentSpec, rubric_dir: Optional[Path] = None) -> list[str]:
    """The environment's requirements: the default packages, then the rubric's (a name given twice: the last wins)."""
    lines = list(DEFAULT_PACKAGES) + _file_requirements(spec, rubric_dir) + list(spec.packages)
    chosen: dict[str, str] = {}
    for line in lines:
        chosen[canonical_name(line)] = line
    return sorted(chosen.values(), key=canonical_name)


def _file_requirements(spec: EnvironmentSpec, rubric_dir: Optional[Path]) -> list[str]:
    if spec.requirements is None:
        return []
    path = Path(spec.requirements)
    if not path.is_absolute():
        path = (rubric_dir or Path.cwd()) / path
    try:
        text = path.read_text()
    except OSError as exc:
        raise GraderError(f"the rubric's environment: requirements: file cannot be read ({exc.strerror})",
                          where=str(path), fix="give a pip requirements file relative to the rubric's folder") from None
    lines = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if not _REQUIREMENT.match(line):
            raise GraderError(f"{line!r} is not a package requirement (options, URLs and paths are not supported)",
                              where=f"{path}:{number}",
                              fix="write one requirement per line, like pandas, keras>=3 or numpy==1.26.4")
        lines.append(line)
    return lines


def environment_key(requirements: list[str], *, python: str = sys.version.split()[0],
                    base_site: tuple[str, ...] = ()) -> str:
    """The content hash a built environment is cached under: its requirements, the Python version and the
    grader interpreter it layers on (a different grader install is a different environment)."""
    canonical = json.dumps({"requirements": sorted(requirements, key=canonical_name), "python": python,
                            "base": list(base_site)}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]
