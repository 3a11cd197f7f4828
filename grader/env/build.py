"""Building and finding grading environments: one cached venv per content hash.

A grading environment layers on the grader's interpreter: a venv whose
`grader-base.pth` adds the grader's site-packages after its own. A requirement
the grader's interpreter already satisfies (torch, numpy, ...) is used from
there, so there is one copy of PyTorch; the rest is installed into the venv
with uv when it is on PATH, else with pip (`pip --python`). pip sees the grader's
packages through the .pth and reuses them for dependencies; uv looks only at the
venv, so it also installs their dependencies there (same versions, a few MB more;
measured: 2.8 s for default + keras here, against 10.9 s with pip). A requirement the
rubric pins to another version than the grader has is installed into the venv,
whose own site-packages come first.

The venv is built under a temporary name and renamed when complete, so a
half-built environment is never used; `grading-env.json` in it records what
was installed and how long the build took.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import site
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Optional

from packaging.requirements import InvalidRequirement, Requirement

from grader.env.spec import PACKAGES_KEY, EnvironmentSpec, canonical_name, environment_key, requirements_of
from grader.errors import GraderError

ENV_VAR = "GRADER_ENVS"
MARKER = "grading-env.json"

Report = Callable[[str, int, int], None]  # (what is happening, steps done, steps in all)


def envs_dir(environ: Mapping[str, str] = os.environ) -> Path:
    """Where environments are cached: $GRADER_ENVS, else $XDG_CACHE_HOME/mnist-grader/envs, else ~/.cache/..."""
    if environ.get(ENV_VAR):
        return Path(environ[ENV_VAR]).expanduser()
    base = environ.get("XDG_CACHE_HOME", "")
    return (Path(base) if os.path.isabs(base) else Path.home() / ".cache") / "mnist-grader" / "envs"


def base_site_packages() -> tuple[str, ...]:
    """The grader interpreter's site-packages, which every grading environment sees after its own."""
    return tuple(p for p in site.getsitepackages() if os.path.isdir(p))


@dataclass(frozen=True)
class Environment:
    """A grading environment, built or not: where it lives and what it holds."""

    key: str
    path: Path
    requirements: tuple[str, ...]
    compat: tuple[str, ...]
    packages: Mapping[str, str]  # canonical name -> version the kernel imports (empty until built)
    build_seconds: Optional[float] = None
    installer: Optional[str] = None

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"

    @property
    def built(self) -> bool:
        return (self.path / MARKER).is_file()


def plan(spec: EnvironmentSpec, rubric_dir: Optional[Path] = None, *,
         root: Optional[Path] = None) -> Environment:
    """The environment a rubric asks for, read from the cache when it was built."""
    requirements = requirements_of(spec, rubric_dir)
    key = environment_key(requirements, base_site=base_site_packages())
    path = (root or envs_dir()) / key
    env = Environment(key, path, tuple(requirements), tuple(spec.compat), {})
    if env.built:
        recorded = json.loads((path / MARKER).read_text())
        env = Environment(key, path, tuple(requirements), tuple(spec.compat), recorded["packages"],
                          recorded.get("build_seconds"), recorded.get("installer"))
    return env


def locate(spec: EnvironmentSpec, rubric_dir: Optional[Path] = None, *, rubric: str = "the rubric",
           root: Optional[Path] = None) -> Environment:
    """The built environment; GraderError saying how to build it when it is not there yet."""
    env = plan(spec, rubric_dir, root=root)
    if not env.built:
        raise GraderError(f"the grading environment of {rubric} is not built yet (it would be {env.path})",
                          where=rubric, fix=f"run `grade env build {rubric}` once (it is cached afterwards)")
    return env


def satisfied_by_grader(requirement: str) -> Optional[str]:
    """The version of the grader's own interpreter that meets `requirement`, else None."""
    try:
        req = Requirement(requirement)
        version = metadata.version(req.name)
    except (InvalidRequirement, metadata.PackageNotFoundError):
        return None
    return version if req.specifier.contains(version, prereleases=True) else None


def installer(python: Path) -> tuple[str, list[str]]:
    """("uv", argv) when uv is on PATH, else ("pip", argv): the command that installs into the venv's `python`."""
    uv = shutil.which("uv")
    if uv:
        return "uv", [uv, "pip", "install", "--python", str(python)]
    return "pip", [sys.executable, "-m", "pip", "--python", str(python), "install", "--disable-pip-version-check",
                   "--progress-bar", "off"]


def build(spec: EnvironmentSpec, rubric_dir: Optional[Path] = None, *, report: Optional[Report] = None,
          force: bool = False, root: Optional[Path] = None) -> Environment:
    """Build the environment into the cache (nothing to do when it is there and `force` is off)."""
    report = report or (lambda *_: None)
    env = plan(spec, rubric_dir, root=root)
    if env.built and not force:
        return env
    env.path.parent.mkdir(parents=True, exist_ok=True)
    with open(env.path.with_name(f"{env.key}.lock"), "w") as lock:  # two builds of one environment: one builds
        fcntl.flock(lock, fcntl.LOCK_EX)
        if force or not plan(spec, rubric_dir, root=root).built:
            _build(env, report)
    return plan(spec, rubric_dir, root=root)


def _build(env: Environment, report: Report) -> None:
    started = time.monotonic()
    missing = [r for r in env.requirements if satisfied_by_grader(r) is None]
    steps = 2 + len(missing)
    partial = env.path.with_name(f"{env.key}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        report("creating the venv", 0, steps)
        _run([sys.executable, "-m", "venv", "--without-pip", str(partial)], "creating the venv")
        python = partial / "bin" / "python"
        site_dir = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                             "reading the venv's site-packages").strip())
        # addsitedir, not a plain path line: the .pth files there (editable installs, ...) are read too
        site_dir.joinpath("grader-base.pth").write_text(
            "".join(f"import site; site.addsitedir({p!r})\n" for p in base_site_packages()))
        tool = None
        if missing:
            tool, argv = installer(python)
            _install(argv + missing, missing, report, steps)
        report("checking what the kernel will import", steps - 1, steps)
        packages = _installed(python, env.requirements)
        seconds = round(time.monotonic() - started, 1)
        partial.joinpath(MARKER).write_text(json.dumps({
            "key": env.key, "requirements": list(env.requirements), "packages": packages,
            "installed": missing, "installer": tool, "build_seconds": seconds, "python": sys.version.split()[0],
        }, indent=1))
        if env.path.exists():
            shutil.rmtree(env.path)
        partial.rename(env.path)
        report("done", steps, steps)
    finally:
        shutil.rmtree(partial, ignore_errors=True)


def _run(argv: list[str], what: str) -> str:
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode != 0:
        raise GraderError(f"{what} failed (exit {done.returncode}): {(done.stderr or done.stdout).strip()[-1500:]}",
                          where=" ".join(argv[:3]), fix="check the Python install and the disk space, then retry")
    return done.stdout


def _install(argv: list[str], missing: list[str], report: Report, steps: int) -> None:
    """Run the installer, moving the bar one step for each requested package it reaches."""
    wanted = {canonical_name(r) for r in missing}
    seen: set[str] = set()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line)
        words = line.split()
        # pip: "Collecting pandas" or "Processing /wheels/pandas-2.2.3-...whl" (a local wheel); uv: " + pandas==2.2.3"
        if len(words) >= 2 and words[0] in ("Collecting", "Processing", "+"):
            name = canonical_name(Path(words[1]).name.split("-")[0] if words[0] == "Processing" else words[1])
            if name in wanted and name not in seen:
                seen.add(name)
            report(f"installing {name}", 1 + len(seen), steps)
    if proc.wait() != 0:
        tail = "".join(lines[-15:]).strip()
        raise GraderError(f"installing {', '.join(missing)} failed:\n{tail}", where=" ".join(argv[:4]),
                          fix=f"check the rubric's `{PACKAGES_KEY}` (names and versions that exist for Python "
                              f"{sys.version_info.major}.{sys.version_info.minor}) and the network, then retry")


_VERSIONS = """
import json, sys
from importlib import metadata
out = {}
for name in sys.argv[1:]:
    try:
        out[name] = metadata.version(name)
    except metadata.PackageNotFoundError:
        out[name] = None
print(json.dumps(out))
"""


def _installed(python: Path, requirements: tuple[str, ...]) -> dict[str, str]:
    """What the venv's interpreter imports for each requirement; GraderError when one is missing or off-version."""
    names = [canonical_name(r) for r in requirements]
    versions = json.loads(_run([str(python), "-c", _VERSIONS, *names], "reading the installed versions"))
    for requirement in requirements:
        name = canonical_name(requirement)
        version = versions.get(name)
        if version is None or not Requirement(requirement).specifier.contains(version, prereleases=True):
            raise GraderError(f"after the install the environment has {name} {version or 'missing'}, "
                              f"not {requirement}", where=str(python),
                              fix=f"check the rubric's `{PACKAGES_KEY}` for requirements that contradict each other")
    return {n: v for n, v in versions.items() if v is not None}


@contextlib.contextmanager
def terminal_bar() -> Iterator[Report]:
    """A rich progress bar on stderr when it is a terminal; one line per step otherwise (logs, CI)."""
    if not sys.stderr.isatty():
        last = [""]

        def plain(what: str, done: int, total: int) -> None:
            if what != last[0]:
                last[0] = what
                print(f"[{done}/{total}] {what}", file=sys.stderr, flush=True)

        yield plain
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=Console(stderr=True)) as bars:
        task = bars.add_task("grading environment", total=None)

        def update(what: str, done: int, total: int) -> None:
            bars.update(task, description=what, completed=done, total=total)

        yield update
