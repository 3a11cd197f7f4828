"""Fetching a linked GitHub notebook with the git CLI (side effects: a clone in a scratch folder, git processes).

The git CLI, not an HTTP client, so that git's own configuration applies: credentials helpers,
proxies, and `url.<base>.insteadOf` (which the tests use to point https://github.com/ at a git server
on 127.0.0.1). The clone has no work tree: student files are read out of git objects one by one,
nothing is checked out, no hook runs. Without a terminal git never prompts for a password, so a
private repository fails at once with a message.

Which commit: the one the link names; else the last commit on the linked branch (the default branch
for a bare repository link) whose committer date is at or before the deadline; else that branch's
head. Which notebook: the linked file; else the one .ipynb in the linked folder (or the repository),
narrowed by the rubric's `notebook:` pattern when there are several.
"""

from __future__ import annotations

import fnmatch
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from grader.links.parse import Link, LinkError

GIT_TIMEOUT = 300  # seconds for a clone: a course repository with datasets in it can be large


@dataclass(frozen=True)
class Fetched:
    path: Path  # the notebook, written under the scratch folder
    commit: str
    commit_date: str  # ISO 8601, the committer date
    notebook_path: str  # inside the repository


def _git(*args: str, cwd: Optional[Path] = None, timeout: int = 60) -> str:
    env = dict(os.environ, GIT_TERMINAL_PROMPT="0", GIT_ASKPASS="true", GIT_LFS_SKIP_SMUDGE="1")
    try:
        done = subprocess.run(["git", "-c", "protocol.file.allow=never", "-c", "core.hooksPath=/dev/null", *args],
                              cwd=cwd, env=env, capture_output=True, timeout=timeout)
    except FileNotFoundError:
        raise LinkError("git is not installed, so link submissions cannot be fetched (apt-get install git)") from None
    except subprocess.TimeoutExpired:
        raise LinkError(f"git {args[0]} took over {timeout} s") from None
    if done.returncode != 0:
        message = done.stderr.decode(errors="replace").strip().splitlines()
        raise _GitFailed(message[-1] if message else f"git {args[0]} failed ({done.returncode})")
    return done.stdout.decode(errors="replace")


class _GitFailed(LinkError):
    pass


def _resolve(repo: Path, link: Link, deadline: Optional[str]) -> tuple[str, tuple[str, ...], bool]:
    """(commit, path parts after the ref, whether the link named the commit itself)."""
    parts = link.ref_path
    if link.sha is not None:
        try:
            commit = _git("rev-parse", "--verify", "--quiet", f"{link.sha}^{{commit}}", cwd=repo).strip()
            return commit, parts[1:], True
        except _GitFailed:
            pass  # a branch named like a hash: try it as a ref below
    candidates = [("/".join(parts[:i]), parts[i:]) for i in range(len(parts), 0, -1)] if parts else [("HEAD", ())]
    for ref, rest in candidates:
        for name in ([f"refs/remotes/origin/{ref}", f"refs/tags/{ref}"] if ref != "HEAD" else ["HEAD"]):
            try:
                _git("rev-parse", "--verify", "--quiet", name, cwd=repo)
            except _GitFailed:
                continue
            if deadline is None:
                return _git("rev-parse", f"{name}^{{commit}}", cwd=repo).strip(), rest, False
            commit = _git("rev-list", "-1", f"--before={deadline}", name, cwd=repo).strip()
            if not commit:
                raise LinkError(f"{link.url}: no commit on {ref if ref != 'HEAD' else 'the default branch'} is from "
                                f"before the deadline {deadline}")
            return commit, rest, False
    shown = "/".join(parts)
    raise LinkError(f"{link.url}: the repository has no branch, tag or commit {shown!r}")


def fetch(link: Link, scratch: Path, *, deadline: Optional[str] = None, pattern: Optional[str] = None) -> Fetched:
    """Clone `link`'s repository into `scratch`, pick the commit and the notebook, write it out; LinkError says
    what went wrong in words a student can act on."""
    scratch = Path(scratch)
    scratch.mkdir(parents=True, exist_ok=True)
    repo = scratch / "repo"
    try:
        _git("clone", "--no-checkout", "--quiet", "--", link.repo_url, str(repo), timeout=GIT_TIMEOUT)
    except _GitFailed as err:
        raise LinkError(f"{link.url}: the repository could not be cloned ({err}); is it public, and is the link "
                        "right? Make it public, or upload the .ipynb file instead") from None
    commit, rest, _ = _resolve(repo, link, deadline)
    date = _git("show", "-s", "--format=%cI", commit, cwd=repo).strip()
    files = [f for f in _git("ls-tree", "-r", "--name-only", "-z", commit, cwd=repo).split("\0") if f]
    where = "/".join(rest)
    if link.kind == "blob":
        if where not in files:
            raise LinkError(f"{link.url}: no file {where} at commit {commit[:12]}")
        chosen = where
    else:
        notebooks = [f for f in files if f.endswith(".ipynb") and ".ipynb_checkpoints" not in f
                     and (not where or f.startswith(where.rstrip("/") + "/"))]
        if pattern is not None:
            notebooks = [f for f in notebooks if fnmatch.fnmatchcase(f, pattern)]
        if not notebooks:
            raise LinkError(f"{link.url}: no notebook" + (f" matching {pattern}" if pattern else "")
                            + (f" under {where}" if where else "") + f" at commit {commit[:12]}")
        if len(notebooks) > 1:
            raise LinkError(f"{link.url}: {len(notebooks)} notebooks at commit {commit[:12]} ("
                            + ", ".join(notebooks) + "): link to the one to grade (.../blob/BRANCH/PATH.ipynb)"
                            + ("" if pattern else ", or the rubric names it with notebook: FOLDER/*.ipynb"))
        chosen = notebooks[0]
    data = subprocess.run(["git", "cat-file", "blob", f"{commit}:{chosen}"], cwd=repo, capture_output=True,
                          timeout=60, check=True).stdout
    out = scratch / Path(chosen).name
    out.write_bytes(data)
    return Fetched(out, commit, date, chosen)
