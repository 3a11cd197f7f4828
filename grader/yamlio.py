"""YAML loading that remembers where every value came from, so errors can name the line."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from grader.errors import GraderError

Loc = tuple  # a path into the document: ("items", 3, "fact")


@dataclass
class LocatedYaml:
    """Plain Python data plus the 1-based line of every mapping key / sequence item."""

    data: Any
    source: str
    lines: dict[Loc, int] = field(default_factory=dict)

    def line(self, loc: Loc) -> int | None:
        """The line of `loc`, or of its nearest ancestor that has one."""
        loc = tuple(loc)
        while loc:
            if loc in self.lines:
                return self.lines[loc]
            loc = loc[:-1]
        return self.lines.get((), None)

    def where(self, loc: Loc) -> str:
        line = self.line(loc)
        return f"{self.source}:{line}" if line else self.source


def _build(node: yaml.Node, loc: Loc, lines: dict[Loc, int]) -> Any:
    lines.setdefault(loc, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = (yaml.safe_load(yaml.serialize(key_node)) if not isinstance(key_node, yaml.ScalarNode)
                   else _scalar(key_node))
            lines[loc + (key,)] = key_node.start_mark.line + 1
            out[key] = _build(value_node, loc + (key,), lines)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, loc + (i,), lines) for i, item in enumerate(node.value)]
    return _scalar(node)


def _scalar(node: yaml.ScalarNode) -> Any:
    if node.tag == "tag:yaml.org,2002:str":
        return node.value
    return yaml.SafeLoader(yaml.serialize(node)).get_single_data()


def loads(text: str, source: str = "<string>") -> LocatedYaml:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark else source
        problem = getattr(exc, "problem", None) or str(exc)
        raise GraderError(f"not valid YAML ({problem})", where=where,
                          fix="check the indentation and quoting on that line") from None
    if node is None:
        return LocatedYaml(None, source, {(): 1})
    lines: dict[Loc, int] = {}
    return LocatedYaml(_build(node, (), lines), source, lines)


def load(path: str | Path) -> LocatedYaml:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise GraderError("file not found", where=str(path), fix="check the path") from None
    except UnicodeDecodeError:
        raise GraderError("not a UTF-8 text file", where=str(path), fix="save it as UTF-8 YAML") from None
    return loads(text, str(path))
