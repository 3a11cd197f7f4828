"""Jinja2 in a sandbox with strict undefined names: how bank text, stacks and expressions are rendered.

Banks are written by people and shared between courses, so templates run in the
sandbox (no attribute access to internals) and a misspelt name is an error, not
an empty string in a student's quiz.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateError, TemplateSyntaxError
from jinja2.sandbox import SandboxedEnvironment

from grader.errors import GraderError

# Names the drawing puts into every question's context; params may not reuse them.
RESERVED = {"network", "input", "output", "layers", "layer", "label", "target", "spec", "table", "rows", "row"}

ENV = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False)


def check_syntax(text: str, where: str) -> None:
    try:
        ENV.parse(text)
    except TemplateSyntaxError as err:
        raise GraderError(f"template syntax error: {err.message}", where=where,
                          fix="check the {{ ... }} and {% ... %} on that line (jinja2 syntax)") from None


def check_expression(expr: str, where: str) -> None:
    try:
        ENV.compile_expression(expr)
    except TemplateSyntaxError as err:
        raise GraderError(f"expression {expr!r} does not parse: {err.message}", where=where,
                          fix="write a jinja2 expression such as `k // 2` or `n > 2 * k`") from None


@lru_cache(maxsize=4096)
def _template(text: str):
    return ENV.from_string(text)


@lru_cache(maxsize=4096)
def _expression(expr: str):
    return ENV.compile_expression(expr, undefined_to_none=False)


def render(text: str, context: Mapping[str, Any], where: str) -> str:
    if "{" not in text:
        return text  # most option texts and many question texts are plain
    try:
        return _template(text).render(**context)
    except TemplateError as err:
        raise GraderError(f"template failed: {err}", where=where,
                          fix="use only the question's params and " + ", ".join(sorted(RESERVED))) from None


def evaluate(expr: str, context: Mapping[str, Any], where: str) -> Any:
    try:
        value = _expression(expr)(**context)
    except TemplateError as err:
        raise GraderError(f"expression {expr!r} failed: {err}", where=where,
                          fix="use only the question's params and " + ", ".join(sorted(RESERVED))) from None
    except (ArithmeticError, TypeError, ValueError, IndexError) as err:
        raise GraderError(f"expression {expr!r} failed: {err}", where=where,
                          fix="check the arithmetic and the names it uses") from None
    if isinstance(value, StrictUndefined):
        raise GraderError(f"expression {expr!r} names something undefined", where=where,
                          fix="use only the question's params and " + ", ".join(sorted(RESERVED)))
    return value

