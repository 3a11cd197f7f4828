"""Self-check on the course's `grade serve` where the sandbox cannot run (Colab): send the saved notebook, or a
GitHub link, to `POST /v1/selfcheck`, poll `GET /v1/selfcheck/{id}` until it is checked, return the results.

The server runs only a static check or a dry run and records no grade (docs/service.md, "Self-check"). This module
is the client and the contract both sides share (path, header, depths); the service imports these names, never
the other way round.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import httpx

from grader.errors import GraderError

PATH = "/v1/selfcheck"
KEY_HEADER = "X-Grader-Selfcheck-Key"  # a header, not a form field or a query: access logs never show it
DEPTHS = ("static", "dry-run")  # what a self-check may run; "full" is the graded run, handed in through the LMS
DONE = ("checked", "failed")
FIRST_POLL, LONGEST_POLL = 0.5, 5.0  # seconds between polls: doubling, up to the longest (or the server's hint)


def _is_link(text: str) -> bool:
    return text.strip().lower().startswith(("https://", "http://"))


def _refusal(response: httpx.Response, server: str) -> GraderError:
    """The server's error answer ({"error": {status, code, what, where, fix}}) as a GraderError."""
    try:
        error = response.json()["error"]
        what, where, fix = error["what"], error.get("where"), error.get("fix")
    except (ValueError, KeyError, TypeError):
        what = f"the server answered HTTP {response.status_code}, not a self-check answer"
        where, fix = None, ("check the server URL your course gave: the grade serve address, "
                            "e.g. https://grader.example.edu")
    if response.status_code == 429 and "retry-after" in response.headers:
        what += f" (Retry-After: {response.headers['retry-after']} s)"
    return GraderError(what, where=f"{server}{f' ({where})' if where else ''}", fix=fix)


def _request(client: httpx.Client, method: str, url: str, server: str, **kw) -> dict:
    try:
        response = client.request(method, url, **kw)
    except httpx.TimeoutException:
        raise GraderError("the self-check server did not answer in time", where=server,
                          fix="try again in a minute; if it keeps failing, tell your instructor") from None
    except httpx.TransportError as exc:
        raise GraderError(f"cannot reach the self-check server ({exc.__class__.__name__}: {exc})", where=server,
                          fix="check the server URL your course gave and your internet connection") from None
    if response.status_code >= 400:
        raise _refusal(response, server)
    try:
        return response.json()
    except ValueError:
        raise GraderError(f"the server answered HTTP {response.status_code} with something that is not JSON",
                          where=server, fix="check the server URL: it is the course's grade serve address") from None


def submit(path_or_link: str | Path, server: str, *, key: Optional[str] = None, depth: str = "dry-run",
           rubric: Optional[str] = None, assignment: Optional[str] = None, timeout: float = 300.0,
           launch: Optional[str] = None) -> dict:
    """Check a saved notebook (a path) or a GitHub link on `server` at `depth` ("static" or "dry-run"); the
    student's results (Gradescope format: score, tests, output, execution_time) with `id`, `status` ("checked"),
    `depth`, `assignment`, `passed`, `max_score`, `not_judged`, `pass_rule` and `items` (the visible items).
    `assignment` is the server's assignment id (the rubric id; `rubric` is the same thing, as `check(rubric=...)`
    names it). `key`: the assignment's self-check key from the
    instructor; `launch`: an LTI upload session instead. GraderError says what went wrong, where, and what to do."""
    if depth not in DEPTHS:
        raise GraderError(f"depth {depth!r} cannot be checked on a server", where="depth",
                          fix=f"use one of: {', '.join(DEPTHS)} (the full run is the graded one: hand the notebook "
                              "in through your course)")
    assignment = assignment or rubric
    if not assignment and launch is None:
        raise GraderError("no assignment named", where="assignment",
                          fix='name the assignment your course gave, e.g. assignment="mnist-s3"')
    if key is None and launch is None:
        raise GraderError("no self-check key", where="key",
                          fix="pass the self-check key your instructor gave for this assignment: key=\"...\"")
    server = server.rstrip("/")
    data = {"depth": depth, **({"assignment": assignment} if assignment else {}),
            **({"launch": launch} if launch else {})}
    files = None
    target = str(path_or_link)
    if _is_link(target):
        data["link"] = target.strip()
    else:
        notebook = Path(target)
        try:
            files = {"notebook": (notebook.name, notebook.read_bytes(), "application/x-ipynb+json")}
        except OSError as exc:
            raise GraderError(f"cannot read the notebook ({exc.strerror or exc})", where=str(notebook),
                              fix="save the notebook (File > Save) and give its path, or a GitHub link") from None
    headers = {KEY_HEADER: key} if key is not None else {}
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=min(60.0, timeout), follow_redirects=False) as client:
        state = _request(client, "POST", server + PATH, server, data=data, files=files, headers=headers)
        if not isinstance(state, dict) or not {"id", "status"} <= set(state):
            raise GraderError("the server's answer is not a self-check's (no id and status)", where=server,
                              fix="check the server URL: it is the course's grade serve address, which has "
                                  f"{PATH}")
        wait = FIRST_POLL
        while state.get("status") not in DONE:
            if time.monotonic() + wait > deadline:
                raise GraderError(f"the self-check was still {state.get('status')} after {timeout:g} s "
                                  f"(queue position {state.get('queue_position') or '-'})", where=server,
                                  fix="the server is busy: try again later, or pass a longer timeout=")
            time.sleep(wait)
            wait = min(wait * 2, LONGEST_POLL)
            state = _request(client, "GET", f"{server}{PATH}/{state['id']}", server)  # the id is the capability
    if state["status"] == "failed":
        raise GraderError(f"the self-check could not be done: {state.get('reason')}", where=server,
                          fix="fix what it says and check again; if it names the server, tell your instructor")
    return state
