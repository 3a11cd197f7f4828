"""What a link submission points at (pure): the GitHub repository, the commit or branch, the path.

Students hand in `.url` files (Windows shortcuts, `URL=...`), `.txt` files, `.html` files, or Moodle's
online text (`onlinetext.html`) holding a link. Of GitHub links we read

    https://github.com/OWNER/REPO[.git]                       the default branch
    https://github.com/OWNER/REPO/tree/REF[/FOLDER]           a branch, tag or commit, and a folder
    https://github.com/OWNER/REPO/blob/REF/PATH.ipynb         one notebook at a branch, tag or commit

A REF with slashes is ambiguous here (`tree/feature/x/S4`): `ref_path` keeps the parts after
`tree/` / `blob/`, and the fetcher splits them where the repository has a matching ref.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional
from urllib.parse import unquote, urlsplit

LINK_SUFFIXES = (".url", ".txt", ".html", ".htm", ".webloc")
_URL = re.compile(r"https?://[^\s\"'<>\]\[)]+", re.IGNORECASE)


class LinkError(ValueError):
    """A link we cannot grade; the message says what to hand in instead."""


@dataclass(frozen=True)
class Link:
    url: str  # as handed in
    repo_url: str  # https://github.com/OWNER/REPO (what git clones)
    kind: str  # "repo" | "tree" | "blob"
    ref_path: tuple[str, ...] = ()  # after tree/ or blob/: REF parts then PATH parts, split by the fetcher

    @property
    def sha(self) -> Optional[str]:
        """The commit, when the link names one by its full or abbreviated hash."""
        first = self.ref_path[0] if self.ref_path else ""
        return first if re.fullmatch(r"[0-9a-f]{7,40}", first) else None


def find_link(text: str) -> Optional[str]:
    """The first http(s) link in a shortcut, a text file or an HTML page (href or text)."""
    match = _URL.search(html.unescape(text))
    return match.group(0).rstrip(".,;") if match else None


def parse_link(url: str) -> Link:
    parts = urlsplit(url.strip())
    host = (parts.hostname or "").lower()
    if host in ("colab.research.google.com", "colab.google") or host.endswith(("drive.google.com", "docs.google.com")):
        raise LinkError(f"the link {url} is a Colab / Google Drive link, which the grader cannot open: in Colab, "
                        "File > Download > Download .ipynb, and upload that file (or a GitHub link to it)")
    if host not in ("github.com", "www.github.com"):
        raise LinkError(f"the link {url} is not a GitHub link: upload the .ipynb file, or a link to it on "
                        "https://github.com/OWNER/REPO")
    segments = [unquote(s) for s in parts.path.split("/") if s]
    if len(segments) < 2:
        raise LinkError(f"the link {url} names no repository: link to https://github.com/OWNER/REPO "
                        "(or to the notebook in it)")
    owner, repo = segments[0], segments[1].removesuffix(".git")
    repo_url = f"https://github.com/{owner}/{repo}"
    rest = segments[2:]
    if not rest:
        return Link(url, repo_url, "repo")
    if rest[0] in ("tree", "blob") and len(rest) >= 2:
        return Link(url, repo_url, rest[0], tuple(rest[1:]))
    if rest[0] == "commit" and len(rest) == 2:
        return Link(url, repo_url, "tree", (rest[1],))
    raise LinkError(f"the link {url} is not to a repository, folder or notebook on GitHub: link to "
                    "https://github.com/OWNER/REPO, .../tree/BRANCH or .../blob/BRANCH/notebook.ipynb")


def link_in(path: Path) -> Optional[str]:
    """The link a submission file holds (None: it holds none)."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")[:100_000]
    except OSError:
        return None
    return find_link(text)
