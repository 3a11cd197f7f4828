"""Loading rubrics: a path or a shipped rubric's name -> a validated Rubric, errors with file, line and item id."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from pydantic import BaseModel, ValidationError

import grader
from grader import yamlio
from grader.env.spec import EnvironmentSpec
from grader.errors import GraderError
from grader.rubric.schema import Band, Feedback, Item, PassRule, Rubric
from grader.schema_errors import schema_error, yaml_keys
from grader.settings import RubricLimits

RUBRICS = Path(grader.__file__).resolve().parent.parent / "rubrics"
FIX = "see the rubric format in `grade rubric --help`"
# Keys authors bring from other tools (MongoDB, SQL, spreadsheets): difflib alone would turn gte into gt.
SYNONYMS = {"gte": "ge", "lte": "le", "min": "ge", "max": "le", "equals": "eq", "is": "eq", "one_of": "in",
            "range": "between", "weight": "points", "score": "points", "name": "title", "key": "fact"}


def shipped() -> list[str]:
    """Names of the rubrics in the repository's rubrics/ folder."""
    return sorted(path.stem for path in RUBRICS.glob("*.yaml"))


def resolve(path_or_name: str | Path) -> Path:
    """A file path as given, or a bare name like `mnist-s3` as rubrics/mnist-s3.yaml."""
    path = Path(path_or_name)
    if path.exists() or path.suffix in (".yaml", ".yml") or len(path.parts) > 1:
        return path
    named = RUBRICS / f"{path_or_name}.yaml"
    if named.exists():
        return named
    raise GraderError(f"no rubric file or shipped rubric named {str(path_or_name)!r}", where=str(path_or_name),
                      fix="give a path to a .yaml file or one of: " + ", ".join(shipped()))


def load_rubric(path_or_name: str | Path) -> Rubric:
    return rubric_from_yaml(yamlio.load(resolve(path_or_name)))


def rubric_from_yaml(doc: yamlio.LocatedYaml) -> Rubric:
    """Validate parsed YAML as a rubric; its problems are raised together, each with its file, line and item id."""
    if not isinstance(doc.data, dict):
        raise GraderError("a rubric is a mapping with id, title and items", where=doc.where(()),
                          fix="start the file with `id: my-assignment`, `title: ...` and `items:`")
    try:
        rubric = Rubric.model_validate(doc.data)
    except ValidationError as exc:
        raise schema_error(exc, doc, keys_at=_keys_at, subject=lambda loc: _subject(loc, doc),
                           fix=FIX, synonyms=SYNONYMS) from None
    rubric._source = doc.source
    return rubric


def rubric_hash(rubric: Rubric) -> str:
    """sha256 of the rubric's canonical JSON: equal for equal rubrics, whatever the key order or comments."""
    canonical = json.dumps(rubric.model_dump(mode="json", by_alias=True), sort_keys=True, separators=(",", ":"),
                           ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _keys_at(loc: tuple) -> list[str]:
    """The keys allowed in the mapping at a path into the YAML."""
    names = [part for part in loc if isinstance(part, str)]
    models: dict[tuple[str, ...], type[BaseModel]] = {
        (): Rubric, ("limits",): RubricLimits, ("pass",): PassRule, ("items",): Item, ("items", "feedback"): Feedback,
        ("items", "bands"): Band, ("environment",): EnvironmentSpec}
    return yaml_keys(models.get(tuple(names), Rubric))


def _subject(loc: tuple, doc: yamlio.LocatedYaml) -> tuple[str, tuple]:
    """("items", 2, "points") -> ("item 'accuracy'", ("points",)): errors name the item by its id."""
    if len(loc) >= 2 and loc[0] == "items" and isinstance(loc[1], int):
        items = doc.data.get("items")
        item = items[loc[1]] if isinstance(items, list) and loc[1] < len(items) else None
        if isinstance(item, dict) and isinstance(item.get("id"), str):
            return f"item {item['id']!r}", loc[2:]
        return f"items[{loc[1]}]", loc[2:]
    return "", loc
