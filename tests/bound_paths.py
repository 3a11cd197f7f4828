"""What a sandbox may show of a host folder: only the names on the way to what it binds. The grader's interpreter
is bound, and it may live inside the checkout (./setup.sh's .venv) or under root's home (pyenv), so those folders
can show one entry each: the next step towards it, never the checkout's code or home's files."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from grader.sandbox.bwrap import HostLayout


def leading_into(top: str, bound: Iterable[str] = ()) -> set[str]:
    """The names directly inside `top` that lead to the interpreter's folders or to `bound`."""
    top = top.rstrip("/") or "/"
    paths = [*HostLayout.detect().python_roots, *map(str, bound)]
    return {Path(p).relative_to(top).parts[0] for p in paths
            if p != top and (top == "/" or p.startswith(top + "/"))}


def shows_only_the_way_in(seen: object, top: str, bound: Iterable[str] = ()) -> bool:
    """`seen` (a listing of `top` from inside, or an error) shows nothing but the way to what is bound."""
    return not isinstance(seen, list) or set(seen) <= leading_into(top, bound)
