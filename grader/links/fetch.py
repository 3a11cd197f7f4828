"""Fetching a linked GitHub repository's tree with the git CLI (side effects: a clone and the hand-in written in a
scratch folder, git processes).

The git CLI, not an HTTP client, so that git's own configuration applies: credentials helpers,
proxies, and `url.<base>.insteadOf` (which the tests use to point https://github.com/ at a git server
on 127.0.0.1). The clone has no work tree: nothing is checked out, no hook runs. Without a terminal
git never prompts for a password, so a private repository fails at once with a message.

Which commit: the one the link names; else the last commit on the linked branch (the default branch
for a bare repository link) whose committer date is at or before the deadline; else that branch's
head. Which notebook: the linked file; else the one .ipynb in the linked folder (or the repository),
narrowed by the rubric's `notebook:` pattern when there are several.

What is handed in: the repository's tree at that commit, the hand-in of the notebook (`grader.handin`).
The tree is listed with modes and sizes (`git ls-tree`), the hand-in's rules and limits are applied to
that listing (`handin.select`) before anything is written, and only the files staged are read out of git
objects (one `git cat-file --batch`) and written under `tree/` in the scratch folder. Symbolic links and
submodules are never written, only listed as left out; so is a path that is absolute or has a `..` part
(git never makes one, a crafted tree object can). Each file is created anew below the tree's folder,
one folder at a time, never through a link.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from grader.handin import LINK_REASON, NOT_UTF8_REASON, HandIn, StagedFile, matches, select
from grader.links.parse import Link, LinkError

GIT_TIMEOUT = 300  # seconds for a clone: a course repository with datasets in it can be large


@dataclass(frozen=True)
class Fetched:
    handin: HandIn  # the repository's tree at the commit, as written under the scratch folder
    commit: str
    commit_date: str  # ISO 8601, the committer date

    @property
    def root(self) -> Path:
        """The folder the tree was written to (the repository's root)."""
        return self.handin.root

    @property
    def path(self) -> Path:
        """The notebook, in that folder."""
        return self.handin.root / self.handin.notebook

    @property
    def notebook_path(self) -> str:
        """The notebook's path in the repository."""
        return self.handin.notebook


_NOT_WRITTEN = {"120000": LINK_REASON,
                "160000": "a submodule (another repository, not its files): put its files in this repository"}


def _command(*args: str) -> tuple[list[str], dict[str, str]]:
    env = dict(os.environ, GIT_TERMINAL_PROMPT="0", GIT_ASKPASS="true", GIT_LFS_SKIP_SMUDGE="1")
    return ["git", "-c", "protocol.file.allow=never", "-c", "core.hooksPath=/dev/null", *args], env


def _run(*args: str, cwd: Optional[Path] = None, timeout: int = 60) -> bytes:
    command, env = _command(*args)
    try:
        done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, timeout=timeout)
    except FileNotFoundError:
        raise LinkError("git is not installed, so link submissions cannot be fetched (apt-get install git)") from None
    except subprocess.TimeoutExpired:
        raise LinkError(f"git {args[0]} took over {timeout} s") from None
    if done.returncode != 0:
        message = done.stderr.decode(errors="replace").strip().splitlines()
        raise _GitFailed(message[-1] if message else f"git {args[0]} failed ({done.returncode})")
    return done.stdout


def _git(*args: str, cwd: Optional[Path] = None, timeout: int = 60) -> str:
    return _run(*args, cwd=cwd, timeout=timeout).decode(errors="replace")


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


def _listing(repo: Path, commit: str) -> tuple[dict[str, tuple[str, int]], list[tuple[str, str]]]:
    """The commit's regular files ({path: (blob, size)}) and what is never written (links, submodules), with why."""
    files: dict[str, tuple[str, int]] = {}
    left: list[tuple[str, str]] = []
    for record in _run("ls-tree", "-r", "-l", "-z", "--full-tree", commit, cwd=repo).split(b"\0"):
        if not record:
            continue
        meta, _, raw = record.partition(b"\t")
        mode, kind, blob, size = meta.decode("ascii").split()
        try:
            path = raw.decode("utf-8")
        except UnicodeDecodeError:  # facts, reports and the gradebook are UTF-8 text
            left.append((raw.decode("utf-8", "backslashreplace"), NOT_UTF8_REASON))
            continue
        if path in files:
            left.append((path, "listed twice in one git tree (a crafted tree object): the first one is kept"))
        elif kind == "blob" and mode.startswith("100"):
            files[path] = (blob, int(size))
        else:
            left.append((path, _NOT_WRITTEN.get(mode, f"not a regular file (git mode {mode})")))
    return files, left


def _notebook(link: Link, files: dict[str, tuple[str, int]], left: list[tuple[str, str]], where: str,
              commit: str, pattern: Optional[str]) -> str:
    if link.kind == "blob":
        if where not in files:
            why = dict(left).get(where)
            raise LinkError(f"{link.url}: " + (f"{where} at commit {commit[:12]} is {why.split(':')[0]}; link to the "
                                               "notebook file itself" if why else
                                               f"no file {where} at commit {commit[:12]}"))
        return where
    notebooks = [f for f in files if f.endswith(".ipynb") and ".ipynb_checkpoints" not in f
                 and (not where or f.startswith(where.rstrip("/") + "/"))]
    if pattern is not None:
        notebooks = [f for f in notebooks if matches(f, pattern)]
    if not notebooks:
        raise LinkError(f"{link.url}: no notebook" + (f" matching {pattern}" if pattern else "")
                        + (f" under {where}" if where else "") + f" at commit {commit[:12]}")
    if len(notebooks) > 1:
        raise LinkError(f"{link.url}: {len(notebooks)} notebooks at commit {commit[:12]} ("
                        + ", ".join(sorted(notebooks)) + "): link to the one to grade (.../blob/BRANCH/PATH.ipynb)"
                        + ("" if pattern else ", or the rubric names it with notebook: FOLDER/*.ipynb"))
    return notebooks[0]


def _create(root: int, path: str) -> int:
    """A new file at `path` below the folder `root` (an open descriptor), for writing: each folder made or opened
    without following a link, the file created, never opened if it exists; OSError when it cannot be."""
    parts = path.split("/")
    folder = os.dup(root)
    try:
        for part in parts[:-1]:
            try:
                os.mkdir(part, 0o755, dir_fd=folder)
            except FileExistsError:
                pass
            inner = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=folder)
            os.close(folder)
            folder = inner
        return os.open(parts[-1], os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644,
                       dir_fd=folder)
    finally:
        os.close(folder)


def _blob(stream, size: int, path: str) -> Iterator[bytes]:
    """The next object's `size` bytes from `git cat-file --batch`'s output, in blocks; the newline after it read."""
    remaining = size
    while remaining:
        block = stream.read(min(remaining, 1 << 20))
        if not block:
            raise LinkError(f"git cat-file stopped in the middle of {path}")
        remaining -= len(block)
        yield block
    stream.read(1)


def _write(repo: Path, tree: Path, staged: tuple[tuple[str, int], ...],
           blobs: dict[str, str]) -> tuple[list[StagedFile], list[tuple[str, str]]]:
    """Read each staged file's blob with one `git cat-file --batch` and write it under `tree` (a new folder)."""
    tree.mkdir()
    written: list[StagedFile] = []
    left: list[tuple[str, str]] = []
    command, env = _command("cat-file", "--batch")
    root = os.open(tree, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        with subprocess.Popen(command, cwd=repo, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL) as git:
            assert git.stdin is not None and git.stdout is not None  # both are pipes
            for path, _ in staged:
                git.stdin.write(blobs[path].encode("ascii") + b"\n")
                git.stdin.flush()
                header = git.stdout.readline().split()
                if len(header) != 3 or header[1] != b"blob":
                    left.append((path, "missing from the clone (git cat-file: " + b" ".join(header[1:]).decode() + ")"))
                    continue
                size = int(header[2])
                try:
                    out = os.fdopen(_create(root, path), "wb")
                except OSError as exc:
                    left.append((path, f"cannot be written ({exc.strerror or exc})"))
                    for _ in _blob(git.stdout, size, path):
                        pass
                    continue
                sha = hashlib.sha256()
                with out:
                    for block in _blob(git.stdout, size, path):
                        sha.update(block)
                        out.write(block)
                written.append(StagedFile(path, size, sha.hexdigest()))
            git.stdin.close()
    finally:
        os.close(root)
    return written, left


def fetch(link: Link, scratch: Path, *, deadline: Optional[str] = None, pattern: Optional[str] = None) -> Fetched:
    """Clone `link`'s repository into `scratch`, pick the commit and the notebook, write the hand-in (the tree at that
    commit, within the hand-in's rules and limits) under `scratch`/tree; LinkError says what went wrong in words a
    student can act on."""
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
    files, left = _listing(repo, commit)
    notebook = _notebook(link, files, left, "/".join(rest), commit, pattern)
    chosen = select(((path, size) for path, (_, size) in files.items()), notebook)
    if not chosen.staged or chosen.staged[0][0] != notebook:
        why = dict(chosen.left_out).get(notebook, "it cannot be handed in")
        raise LinkError(f"{link.url}: the notebook {notebook!r} at commit {commit[:12]} is {why}; move it to a plain "
                        "path in the repository and link to it")
    blobs = {path: blob for path, (blob, _) in files.items()}
    written, unwritten = _write(repo, scratch / "tree", chosen.staged, blobs)
    if notebook in dict(unwritten):
        raise LinkError(f"{link.url}: the notebook {notebook} at commit {commit[:12]} could not be written: "
                        f"{dict(unwritten)[notebook]}; rename it to a short plain name, or upload the .ipynb file "
                        "instead")
    left_out = tuple(sorted([*left, *chosen.left_out, *unwritten]))
    return Fetched(HandIn(scratch / "tree", notebook, tuple(written), left_out), commit, date)
