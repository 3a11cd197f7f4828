"""mnist-grader: grade convolutional-network assignments by measuring, not by trusting."""

__version__ = "0.1.0"


def check(notebook: str | None = None, *, rubric: str = "mnist-s3", depth: str = "dry-run") -> int:
    """Self-check from inside a notebook cell: `from grader import check; check()`.

    Runs `grade check` on the saved notebook in a separate process (the sandbox, never
    this kernel) and prints its report. `depth` is "static", "dry-run" or "full".
    Save the notebook first: what is checked is the file on disk.
    """
    import os
    import subprocess
    import sys

    from grader.errors import GraderError

    path = notebook or _current_notebook()
    if path is None:
        raise GraderError("cannot tell which notebook this is", where="check()",
                          fix='pass its path: check("my_notebook.ipynb")')
    if depth not in ("static", "dry-run", "full"):
        raise GraderError(f"depth {depth!r} is not one of static, dry-run, full", where="check()",
                          fix='use check(depth="static"), "dry-run" or "full"')
    flags = {"static": ["--static"], "dry-run": ["--dry-run"], "full": []}[depth]
    env = {**os.environ, "COLUMNS": os.environ.get("COLUMNS", "120")}
    done = subprocess.run([sys.executable, "-m", "grader", "check", str(path), "--rubric", rubric, *flags],
                          capture_output=True, text=True, env=env)
    print(done.stdout + done.stderr)
    return done.returncode


def _current_notebook() -> str | None:
    """The notebook this kernel belongs to, where the front end says (Jupyter Server 2+, VS Code)."""
    import os

    try:
        from IPython import get_ipython
    except ImportError:
        return None
    shell = get_ipython()
    user_ns = getattr(shell, "user_ns", {}) or {}
    for candidate in (user_ns.get("__vsc_ipynb_file__"), user_ns.get("__session__"), os.environ.get("JPY_SESSION_NAME")):
        if candidate and str(candidate).endswith(".ipynb") and os.path.exists(candidate):
            return str(candidate)
    return None
