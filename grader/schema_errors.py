"""Pydantic validation errors as GraderErrors that name the file, the line, the thing and the allowed values.

Shared by every YAML schema (rubrics, quiz banks). A schema's validators raise
`invalid(what, fix, at=..., see=...)` when they know better than pydantic what to
tell the author; everything else (unknown keys, missing keys, wrong types,
literals) gets a standard message here. Every problem is reported, each with
its own line and fix, so that one lint run shows all there is to mend.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

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
    meant = _meant(word, options, synonyms)
    return f" (did you mean {meant!r}?)" if meant else ""


def _meant(word: Any, options: Iterable[str], synonyms: Mapping[str, str] | None = None) -> str | None:
    options = list(options)
    if synonyms and synonyms.get(str(word)) in options:
        return synonyms[str(word)]
    close = difflib.get_close_matches(str(word), options, n=1, cutoff=0.6)
    return close[0] if close else None


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
    """Every error of `exc` as one GraderError: a single problem as it is, several as a list in line order,
    each with its own line and fix.

    keys_at(loc): the keys allowed in the mapping at `loc` (for unknown / missing keys).
    subject(loc): splits a location into a name for the thing ("item 'accuracy'") and the rest of the path.
    yaml_loc(loc): maps a pydantic location to a path into the YAML (e.g. drops a union's tag).
    fix: what to tell the author when nothing more specific is known.
    synonyms: unknown keys people often write for an allowed one ({"gte": "ge"}), suggested before spelling.
    """
    errors = [(err, yaml_loc(tuple(err["loc"]))) for err in exc.errors()]
    # A misspelt key also makes the intended one "missing": the misspelling's message says both.
    meant = {(loc[:-1], _meant(loc[-1], keys_at(loc[:-1]), synonyms))
             for err, loc in errors if err["type"] == "extra_forbidden" and loc}
    problems: dict[tuple[str, str], tuple[int, GraderError]] = {}
    for err, loc in errors:
        if err["type"] == "missing" and loc and (loc[:-1], loc[-1]) in meant:
            continue
        line, problem = _problem(err, loc, doc, keys_at=keys_at, fix=fix, subject=subject, synonyms=synonyms)
        problems.setdefault((problem.where or "", problem.what), (line, problem))
    ordered = [problem for _, problem in sorted(problems.values(), key=lambda pair: pair[0])]
    return ordered[0] if len(ordered) == 1 else SchemaProblems(doc.source, ordered)


class SchemaProblems(GraderError):
    """Several problems in one YAML file. `what`, `where` and `fix` are the first's (in line order), for code
    that looks at one; what the user reads, `render()`, lists every problem with its line and fix."""

    def __init__(self, source: str, problems: Sequence[GraderError]):
        self.source = source
        self.problems = tuple(problems)
        first = self.problems[0]
        super().__init__(first.what, where=first.where, fix=first.fix)

    def render(self) -> str:
        listing = "\n".join("  " + problem.render().replace("\n", "\n  ") for problem in self.problems)
        return f"{self.source}: {len(self.problems)} problems, each with its line and what to do:\n{listing}"


def _problem(err: Mapping[str, Any], loc: Loc, doc: LocatedYaml, *, keys_at: Callable[[Loc], list[str]], fix: str,
             subject: Callable[[Loc], tuple[str, Loc]], synonyms: Mapping[str, str] | None) -> tuple[int, GraderError]:
    """(its line, or 0, and the GraderError) for one pydantic error at the YAML path `loc`."""
    ctx = err.get("ctx") or {}
    at = loc + tuple(ctx.get("at") or ())  # `at` moves the line, the message names the validated thing
    where = doc.where(at)
    kind = err["type"]
    key = loc[-1] if loc else None
    parent = loc[:-1] if kind in ("extra_forbidden", "missing") else loc
    name, rest = subject(parent)

    def what(text: str, path: Loc = rest) -> str:
        head = ": ".join(part for part in (name, dotted(path)) if part)
        return f"{head}: {text}" if head else text

    if kind == INVALID:
        hint = ctx["fix"]
        if ctx.get("see") is not None and doc.line(ctx["see"]):
            hint += f" (line {doc.line(ctx['see'])})"
        problem = GraderError(what(ctx["what"]), where=where, fix=hint)
    elif kind == "extra_forbidden":
        allowed = keys_at(parent)
        problem = GraderError(what(f"unknown key {key!r}{did_you_mean(key, allowed, synonyms)}"), where=where,
                              fix="allowed keys here: " + ", ".join(allowed))
    elif kind == "missing":
        problem = GraderError(what(f"missing key {key!r}"), where=where, fix="keys here: " + ", ".join(keys_at(parent)))
    elif kind == "literal_error":
        problem = GraderError(what(f"{err['input']!r} is not allowed"), where=where,
                              fix=f"use one of: {ctx['expected']}")
    else:
        problem = GraderError(what(err["msg"].removeprefix("Value error, ")), where=where, fix=fix)
    return doc.line(at) or 0, problem
