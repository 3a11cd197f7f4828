"""Pydantic validation errors as GraderErrors that name the file, the line, the thing and the allowed values.

Shared by every YAML schema (rubrics, quiz banks). A schema's validators raise
`invalid(what, fix, at=..., see=...)` when they know better than pydantic what to
tell the author; everything else (unknown keys, missing keys, wrong types,
literals) gets a standard message here. The first problem is reported, with a
count of the others: authors fix one line at a time.
"""

from __future__ import annotations

import difflib
from typing import Any, Callable, Iterable, Mapping

from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticCustomError

from grader.errors import GraderError
from grader.yamlio import Loc, LocatedYaml

INVALID = "grader_invalid"  # the pydantic error type of `invalid`


def invalid(what: str, fix: str, *, at: Loc = (), see: Loc | None = None) -> PydanticCustomError:
    """An error for a validator to raise. The message is prefixed with the validated thing ("item 'a': fact: ");
    `at` is a path below it whose line the error points at, `see` an absolute path whose line the fix
    mentions (e.g. the first of two equal ids)."""
    return PydanticCustomError(INVALID, "{what}", {"what": what, "fix": fix, "at": tuple(at), "see": see})


def did_you_mean(word: Any, options: Iterable[str], synonyms: Mapping[str, str] | None = None) -> str:
    """' (did you mean 'ge'?)' when `word` is a known synonym of, or close to, one of `options`; else ''."""
    options = list(options)
    if synonyms and synonyms.get(str(word)) in options:
        return f" (did you mean {synonyms[str(word)]!r}?)"
    close = difflib.get_close_matches(str(word), options, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def yaml_keys(model: type[BaseModel]) -> list[str]:
    """The keys a model accepts, as written in YAML (aliases where a field has one)."""
    return [field.alias or name for name, field in model.model_fields.items()]


def dotted(loc: Loc) -> str:
    """("items", 3, "bands", 0, "ge") -> "items[3].bands[0].ge"."""
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")


def _plain(loc: Loc) -> tuple[str, Loc]:
    return "", loc


def schema_error(exc: ValidationError, doc: LocatedYaml, *, keys_at: Callable[[Loc], list[str]], fix: str,
                 subject: Callable[[Loc], tuple[str, Loc]] = _plain,
                 yaml_loc: Callable[[Loc], Loc] = lambda loc: loc,
                 synonyms: Mapping[str, str] | None = None) -> GraderError:
    """The first error of `exc` as a GraderError.

    keys_at(loc): the keys allowed in the mapping at `loc` (for unknown / missing keys).
    subject(loc): splits a location into a name for the thing ("item 'accuracy'") and the rest of the path.
    yaml_loc(loc): maps a pydantic location to a path into the YAML (e.g. drops a union's tag).
    fix: what to tell the author when nothing more specific is known.
    synonyms: unknown keys people often write for an allowed one ({"gte": "ge"}), suggested before spelling.
    """
    errors = exc.errors()
    # A misspelt key also makes the intended one "missing": report the misspelling, which says both.
    err = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    ctx = err.get("ctx") or {}
    loc = yaml_loc(tuple(err["loc"]))
    where = doc.where(loc + tuple(ctx.get("at") or ()))  # `at` moves the line, the message names the validated thing
    more = f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
    kind = err["type"]
    key = loc[-1] if loc else None
    parent = loc[:-1] if kind in ("extra_forbidden", "missing") else loc
    name, rest = subject(parent)

    def what(text: str, path: Loc = rest) -> str:
        head = ": ".join(part for part in (name, dotted(path)) if part)
        return f"{head}: {text}{more}" if head else text + more

    if kind == INVALID:
        hint = ctx["fix"]
        if ctx.get("see") is not None and doc.line(ctx["see"]):
            hint += f" (line {doc.line(ctx['see'])})"
        return GraderError(what(ctx["what"]), where=where, fix=hint)
    if kind == "extra_forbidden":
        allowed = keys_at(parent)
        return GraderError(what(f"unknown key {key!r}{did_you_mean(key, allowed, synonyms)}"), where=where,
                           fix="allowed keys here: " + ", ".join(allowed))
    if kind == "missing":
        return GraderError(what(f"missing key {key!r}"), where=where, fix="keys here: " + ", ".join(keys_at(parent)))
    if kind == "literal_error":
        return GraderError(what(f"{err['input']!r} is not allowed"), where=where,
                           fix=f"use one of: {ctx['expected']}")
    return GraderError(what(err["msg"].removeprefix("Value error, ")), where=where, fix=fix)
