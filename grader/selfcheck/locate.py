"""Which notebook a self-check reads: the path it is given, else the one the front end says this kernel runs.

VS Code puts the notebook's path in `__vsc_ipynb_file__`; Jupyter Server 2+ names it in `__session__` and the
kernel's `JPY_SESSION_NAME` (absolute, or relative to the server's root); Colab keeps no file on disk, so
its front end is asked for the notebook (`google.colab._message`, `get_ipynb`) and it is written to a
temporary folder for the check's lifetime. What is checked is what the front end last saved.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grader.errors import GraderError

WHERE = "check()"
ASK_FOR_THE_PATH = 'save the notebook and pass its path: check("my_notebook.ipynb")'
COLAB_TIMEOUT_S = 30  # Colab answers get_ipynb in well under a second; a busy front end can take a few


@dataclass(frozen=True)
class Notebook:
    source: Path | str  # the file (or folder) the check reads; with a server, a repository link (a str)
    shown: str  # how the card names it: the path as given, or "S5.ipynb (from Colab)"


def front_end_names(user_ns: dict[str, Any], environ: dict[str, str]) -> list[tuple[str, str]]:
    """(who said it, the path) for each place a front end names the notebook, VS Code first."""
    said = [("VS Code's __vsc_ipynb_file__", user_ns.get("__vsc_ipynb_file__")),
            ("Jupyter's __session__", user_ns.get("__session__")),
            ("Jupyter's JPY_SESSION_NAME", environ.get("JPY_SESSION_NAME"))]
    return [(who, str(path)) for who, path in said if path and str(path).endswith(".ipynb")]


def on_disk(path: str) -> Path | None:
    """The named file, read as given (absolute, or relative to the kernel's folder), or, for a path relative to
    the server's root, as the file of that name in the kernel's folder (a kernel starts in its notebook's)."""
    for candidate in (Path(path).expanduser(), Path.cwd() / Path(path).name):
        if candidate.is_file():
            return candidate
    return None


def _user_ns() -> dict[str, Any]:
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return getattr(shell, "user_ns", None) or {}


def _colab_message() -> Any:
    """Colab's channel to its front end, or None outside Colab."""
    try:
        from google.colab import _message
    except ImportError:
        return None
    return _message


def _colab_notebook(message: Any, folder: Path) -> Notebook:
    """The notebook as Colab's front end holds it, written into `folder`."""
    reply = message.blocking_request("get_ipynb", request="", timeout_sec=COLAB_TIMEOUT_S)
    notebook = reply.get("ipynb") if isinstance(reply, dict) else None
    if not isinstance(notebook, dict):
        raise GraderError("Colab did not hand over this notebook", where=WHERE,
                          fix="run the cell again; if it keeps failing, File > Download > Download .ipynb, upload "
                              'it beside this notebook and pass its name: check("my_notebook.ipynb")')
    name = str(((notebook.get("metadata") or {}).get("colab") or {}).get("name") or "")
    name = re.sub(r"[^\w. -]", "_", Path(name).name) if name.endswith(".ipynb") else "colab_notebook.ipynb"
    path = folder / name
    path.write_text(json.dumps(notebook), encoding="utf-8")
    return Notebook(source=path, shown=f"{name} (from Colab)")


@contextmanager
def notebook_to_check(given: str | os.PathLike | None) -> Iterator[Notebook]:
    """The notebook to check, for as long as the check runs (a Colab copy is deleted afterwards)."""
    if given is not None:
        if not Path(given).expanduser().exists():
            raise GraderError("no such notebook or folder", where=f"check({str(given)!r})",
                              fix="give the path of your saved notebook (or of its repository's folder), relative "
                                  f"to {Path.cwd()} or absolute")
        yield Notebook(source=Path(given).expanduser(), shown=str(given))
        return
    said = front_end_names(_user_ns(), dict(os.environ))
    for _who, path in said:
        found = on_disk(path)
        if found is not None:
            yield Notebook(source=found, shown=found.name)
            return
    colab = _colab_message()
    if colab is not None:
        with tempfile.TemporaryDirectory(prefix="grader-check-") as folder:
            yield _colab_notebook(colab, Path(folder))
        return
    if said:
        names = "; ".join(f"{who} says {path}" for who, path in said)
        raise GraderError(f"the front end names this notebook, but no such file is saved here ({names})",
                          where=WHERE, fix=ASK_FOR_THE_PATH)
    raise GraderError("cannot tell which notebook this is: the front end does not say (VS Code's "
                      "__vsc_ipynb_file__, Jupyter's __session__ or JPY_SESSION_NAME, Colab)", where=WHERE,
                      fix=ASK_FOR_THE_PATH)
