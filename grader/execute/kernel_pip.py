"""`!pip install X` and `%pip install X` in the student's kernel: the sandbox has no network.

A package the grading environment has is a no-op, said in one line; one it lacks gets a
message naming the package and the rubric key that adds it, instead of pip's minutes of
retries against a network that is not there. Other shell commands run as before.
Everything asked for is kept (`asked()`) for the harness record.

Kernel side: standard library only at module level; never raises into the student's code.
"""

from __future__ import annotations

import re
import shlex
import sys
from importlib import metadata

PACKAGES_KEY = "environment: packages:"  # grader.env.spec.PACKAGES_KEY, not imported: the kernel side stays small

_PIP = re.compile(r"^\s*(?:(?:sudo\s+)?(?:\S*/)?python[\d.]*\s+-m\s+)?(?:\S*/)?pip[\d.]*\s+install\b(.*)$")
_NAME = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)")
_asked: list[dict[str, object]] = []


def asked() -> list[dict[str, object]]:
    """[{"package": "pandas", "version": "2.2.3" or None}] for every package a pip install cell named."""
    return list(_asked)


def requested(command: str) -> list[str] | None:
    """The requirements of a `pip install ...` command line; None when it is not one."""
    command = command.split("&&")[0].split(";")[0]
    match = _PIP.match(command)
    if not match:
        return None
    try:
        words = shlex.split(match[1])
    except ValueError:
        words = match[1].split()
    out, skip = [], False
    for word in words:
        if skip:
            skip = False
            continue
        if word.startswith("-"):  # -q, -U, --upgrade; -r FILE, -i URL take a value
            skip = word in ("-r", "-c", "-i", "-f", "-e", "--index-url", "--extra-index-url", "--find-links",
                            "--requirement", "--constraint", "--target", "-t")
            continue
        out.append(word)
    return out


def answer(requirements: list[str]) -> str:
    """What the cell prints instead of running pip."""
    lines = []
    for requirement in requirements:
        match = _NAME.match(requirement)
        name = match[1] if match else requirement
        try:
            version = metadata.version(name)
        except metadata.PackageNotFoundError:
            version = None
        _asked.append({"package": name, "version": version})
        if version is not None:
            lines.append(f"grader: {name} is already in this assignment's grading environment ({name} {version}); "
                         f"`pip install {requirement}` was skipped")
        else:
            lines.append(f"grader: {name} is not in this assignment's grading environment, and the sandbox has no "
                         f"network to install it. If the assignment needs it, the instructor adds `{name}` under "
                         f"`{PACKAGES_KEY}` in the rubric and runs `grade env build RUBRIC`; otherwise remove the "
                         f"import of {name}.")
    return "\n".join(lines)


def install(shell) -> None:
    """Route `!pip install` (shell.system) and `%pip install` (the pip line magic) through `answer`."""
    system = shell.system

    def guarded_system(command: str, *args, **kwargs):
        try:
            wanted = requested(str(command))
        except Exception:
            wanted = None
        if wanted is None:
            return system(command, *args, **kwargs)
        print(answer(wanted) if wanted else "grader: `pip install` with no package name was skipped")
        shell.user_ns["_exit_code"] = 0
        return None

    shell.system = guarded_system

    def pip_magic(line: str) -> None:
        wanted = requested("pip " + line)
        if wanted is None:
            print("grader: pip is not available in the sandbox (only `pip install` is answered)", file=sys.stderr)
            return
        print(answer(wanted) if wanted else "grader: `pip install` with no package name was skipped")

    shell.register_magic_function(pip_magic, "line", "pip")
