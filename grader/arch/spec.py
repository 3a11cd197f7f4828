"""Reading a layer stack written by a person: YAML, or one line you can type.

`grade arch --help` shows the one-line grammar below.

One-line grammar:

    SPEC    := INPUT ('>' STEP)*
    INPUT   := H 'x' W 'x' C                      400x400x3, 28x28x1
    STEP    := ITEM OPTION* ['*' N]               '*N' repeats the step N times
    ITEM    := '(' SPEC-STEPS ')'                 a group: (c3:16 > bn > relu)*2
             | 'c' K ':' OUT                      conv KxK with OUT channels: c3:32, c1:16, c3x1:8
             | 'mp' K | 'ap' K                    max / average pool KxK (stride K)
             | 'gap' | 'bn' | 'flat' | 'relu' ... layers without settings
             | 'drop' P                           dropout with rate P: drop0.1
             | 'fc:' OUT                          fully connected
             | KIND                               any kind from the YAML form, options below
    OPTION  := 's'N | 'p'N | 'd'N | 'g'N          stride, padding, dilation, groups
             | 'same' | 'nobias' | 'ceil'
             | KEY '=' VALUE                      any YAML key: k=3 out=32 p=same
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grader import yamlio
from grader.arch.engine import Shape, Table, analyze
from grader.arch.layers import ACTIVATIONS, Layer, kind_names, kind_of, normalize
from grader.errors import GraderError


@dataclass(frozen=True)
class Stack:
    input: Shape
    layers: tuple[Layer, ...]
    source: str

    def table(self) -> Table:
        return analyze(self.input, self.layers)


_INPUT = re.compile(r"^\s*(\d+)\s*[x×]\s*(\d+)\s*[x×]\s*(\d+)\s*$", re.I)
_SHORT = [
    (re.compile(r"^c(\d+(?:x\d+)?):(\S+)$", re.I), lambda m: ("conv", {"k": m[1], "out": m[2]})),
    (re.compile(r"^mp(\d+(?:x\d+)?)$", re.I), lambda m: ("maxpool", {"k": m[1]})),
    (re.compile(r"^ap(\d+(?:x\d+)?)$", re.I), lambda m: ("avgpool", {"k": m[1]})),
    (re.compile(r"^(?:drop|do|dropout)(\d*\.?\d+)$", re.I), lambda m: ("dropout", {"rate": float(m[1])})),
    (re.compile(r"^(?:fc|linear|dense):(\S+)$", re.I), lambda m: ("linear", {"out": m[1]})),
]
_OPTION = re.compile(r"^([sdpg])(\d+(?:x\d+)?)$", re.I)
_FILE_NAME = re.compile(r"(^|/)[^/\s]*\.[A-Za-z][A-Za-z0-9]*$")  # name.ext or a path ending in one
_OPTION_KEYS = {"s": "s", "d": "d", "p": "p", "g": "groups"}
_FLAGS: dict[str, tuple[str, Any]] = {"same": ("p", "same"), "nobias": ("bias", False), "ceil": ("ceil", True)}


# Each kind as the one-line form writes it: what an unknown layer's error teaches.
ONE_LINE_SYNTAX = ("c3:16 (a KxK convolution, OUT channels)", "mp2 (max-pool KxK)", "ap2 (average pool KxK)",
                   "gap", "bn", "drop0.1 (dropout, rate P)", "flat", "fc:10 (fully connected, OUT features)",
                   "relu (or " + ", ".join(a for a in ACTIVATIONS if a != "relu") + ")")
# What a kind followed by a number, with no separator, was meant to be: fc10 -> fc:10, maxpool2 -> mp2.
_MEANT = {"linear": "fc:{n}", "maxpool": "mp{n}", "avgpool": "ap{n}", "dropout": "drop{n}", "conv": "c{n}:OUT"}


def _meant(head: str) -> str | None:
    """The token `head` was probably meant to be: a kind and its number run together (fc10), or a near spelling."""
    joined = re.fullmatch(r"([A-Za-z_]+?)(\d+(?:\.\d+)?)", head)
    kind = kind_of(joined[1]) if joined else None
    if joined and kind is not None:
        return _MEANT.get(kind, joined[1]).format(n=joined[2])
    close = difflib.get_close_matches(head.lower(), kind_names(), n=1, cutoff=0.75)
    return close[0] if close else None


def _unknown_layer(head: str, step: str, where: str) -> GraderError:
    meant = _meant(head)
    return GraderError(f"unknown layer kind {head!r}" + (f" in {step!r}" if step != head else ""), where=where,
                       fix=(f"did you mean {meant}? " if meant else "")
                       + "write each layer as one of: " + ", ".join(ONE_LINE_SYNTAX)
                       + "; options after it: s2 p1 d2 g4 same nobias ceil, or key=value (`grade arch --help`)")


def parse_input(text: str, where: str = "input") -> Shape:
    match = _INPUT.match(text)
    if not match and _FILE_NAME.search(text.strip()):
        # `grade arch model.py`, `grade arch net.txt`: a file it does not read, not a mistyped size.
        raise GraderError(f"{text.strip()!r} looks like a file name, but not one of the files a layer stack is "
                          f"read from, and it does not start with an input size (HxWxC)", where=where,
                          fix="give a .yaml/.yml stack, model.py:ClassName, a .pt2/.pt/.pth model, or a one-line "
                              "stack that starts with the input size, like 28x28x1 > c3:8 > gap")
    if not match:
        raise GraderError(f"input size {text.strip()!r} is not HxWxC", where=where,
                          fix="write it like 28x28x1 (height x width x channels)")
    h, w, c = (int(g) for g in match.groups())
    if min(h, w, c) < 1:
        raise GraderError(f"input size {text.strip()} must be positive in every dimension", where=where,
                          fix="write it like 28x28x1")
    return Shape(h, w, c)


def _split_top(text: str, where: str) -> list[str]:
    """Split on '>' outside parentheses."""
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise GraderError("')' without a matching '('", where=where, fix="check the parentheses")
        if ch == ">" and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    if depth:
        raise GraderError("'(' is never closed", where=where, fix="add the missing ')'")
    parts.append("".join(current))
    return parts


def _value(text: str) -> Any:
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return {"true": True, "false": False}.get(text.lower(), text)


def _parse_step(step: str, where: str) -> list[Layer]:
    text = step.strip()
    if not text:
        raise GraderError("empty step (two '>' in a row, or one at the end)", where=where,
                          fix="remove the extra '>'")
    repeat = 1
    match = re.match(r"^(.*?)\s*\*\s*(\d+)$", text, re.S)
    if match:
        text, repeat = match[1].strip(), int(match[2])
        if repeat < 1:
            raise GraderError("a step repeats at least once", where=where, fix="use *1 or more")
    if text.startswith("(") and text.endswith(")"):
        inner = [_parse_step(part, f"{where}, group step {i}")
                 for i, part in enumerate(_split_top(text[1:-1], where), 1)]
        return [layer for _ in range(repeat) for group in inner for layer in group]
    head, *options = text.split()
    name: str | None = None
    settings: dict[str, Any] = {}
    for pattern, build in _SHORT:
        short = pattern.match(head)
        if short:
            name, settings = build(short)
            break
    if name is None:
        if kind_of(head) is None:
            raise _unknown_layer(head, step.strip(), where)
        name = head
    for option in options:
        if "=" in option:
            key, _, value = option.partition("=")
            settings[key] = _value(value)
        elif option.lower() in _FLAGS:
            key, value = _FLAGS[option.lower()]
            settings[key] = value
        elif found := _OPTION.match(option):
            key, value = found.groups()
            settings[_OPTION_KEYS[key.lower()]] = value
        else:
            meant = _meant(head + option) if re.fullmatch(r"\d+(?:\.\d+)?", option) and len(options) == 1 else None
            raise GraderError(f"unknown option {option!r} in {step.strip()!r}", where=where,
                              fix=(f"did you mean {meant}? " if meant else "")
                              + "options are s2, p1, d2, g4, same, nobias, ceil or key=value")
    layer = normalize(name, settings, f"{where} {step.strip()!r}")
    return [layer] * repeat


def parse_line(text: str) -> Stack:
    """`400x400x3 > c3:32 > mp2 > c1:32` -> Stack."""
    first, *steps = _split_top(text, "spec")
    shape = parse_input(first, "spec input")
    layers = [layer for i, step in enumerate(steps, 1) for layer in _parse_step(step, f"step {i}")]
    return Stack(shape, tuple(layers), text.strip())


def _input_from_yaml(value: Any, where: str) -> Shape:
    if isinstance(value, str):
        return parse_input(value, where)
    if (isinstance(value, list) and len(value) == 3
            and all(isinstance(v, int) and not isinstance(v, bool) for v in value)):
        return parse_input("x".join(map(str, value)), where)
    raise GraderError(f"input must be [H, W, C] or 'HxWxC', got {value!r}", where=where,
                      fix="write input: [28, 28, 1]")


def stack_from_data(doc: yamlio.LocatedYaml, loc: tuple = ()) -> Stack:
    """A stack from parsed YAML at `loc` (a whole file, or a `stack:` inside a quiz bank)."""
    node: Any = doc.data
    for part in loc:
        node = node[part]
    if isinstance(node, str):
        return parse_line(node)
    if not isinstance(node, dict) or "input" not in node or "layers" not in node:
        raise GraderError("a layer stack needs `input` and `layers`", where=doc.where(loc),
                          fix="write input: [28, 28, 1] and layers: [{conv: {k: 3, out: 8}}, ...]")
    unknown = set(node) - {"input", "layers", "name", "description"}
    if unknown:
        raise GraderError(f"unknown key(s) {', '.join(sorted(map(str, unknown)))}", where=doc.where(loc),
                          fix="a stack has input, layers and optionally name, description")
    shape = _input_from_yaml(node["input"], doc.where(loc + ("input",)))
    if not isinstance(node["layers"], list):
        raise GraderError("layers must be a list", where=doc.where(loc + ("layers",)),
                          fix="write each layer on its own '- ' line")
    layers: list[Layer] = []
    for i, item in enumerate(node["layers"]):
        where = f"{doc.where(loc + ('layers', i))} (layers[{i}])"
        item = dict(item) if isinstance(item, dict) else item
        repeat = 1
        if isinstance(item, dict) and "repeat" in item:
            repeat = item.pop("repeat")
            if not isinstance(repeat, int) or isinstance(repeat, bool) or repeat < 1:
                raise GraderError(f"repeat must be a whole number >= 1, got {repeat!r}", where=where, fix="repeat: 2")
        options: Any
        if isinstance(item, str):
            name, options = item, {}
        elif isinstance(item, dict) and len(item) == 1:
            name, options = next(iter(item.items()))
            if options is None:
                options = {}
            if not isinstance(options, dict):
                raise GraderError(f"settings of {name} must be a mapping, got {options!r}", where=where,
                                  fix=f"write {name}: {{k: 3, out: 16}}")
        else:
            raise GraderError(f"a layer is one kind with its settings, got {item!r}", where=where,
                              fix="write - conv: {k: 3, out: 16} or - relu")
        layers.extend([normalize(str(name), options, where)] * repeat)
    return Stack(shape, tuple(layers), doc.source)


def load_stack(text_or_path: str) -> Stack:
    """A stack from a YAML file, a YAML string, or a one-line spec."""
    path = Path(text_or_path)
    if path.suffix.lower() in (".yaml", ".yml"):
        return stack_from_data(yamlio.load(path))
    if "\n" in text_or_path or text_or_path.lstrip().startswith(("input:", "{")):
        return stack_from_data(yamlio.loads(text_or_path, "<spec>"))
    return parse_line(text_or_path)
