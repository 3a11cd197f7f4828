"""docs/service.md and README's service section, run as written: each block is read from the doc itself, so the
doc and the test cannot drift apart. The quick start starts a server on loopback (stopped afterwards), the curl +
openssl recipe gets a 202 for a body.json that ends in a newline, and the error table lists every code the service
can return."""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.fixtures.service.harness import LISTENING, ROOT, SECRET, start_server, submission

DOC = ROOT / "docs" / "service.md"
README = ROOT / "README.md"
SERVICE = ROOT / "grader" / "service"
EXAMPLE_URL = "https://grader.example.edu"


def bash_block(doc: Path, after: str) -> str:
    """The first ```bash block after the line `after` in `doc`."""
    text = doc.read_text()
    match = re.compile(r"^```bash\n(.*?)^```", re.S | re.M).search(text, text.index(after))
    assert match, f"{doc}: no ```bash block after {after!r}"
    return match[1]


def shell(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment a reader's shell has: `grade` on PATH (this checkout's), no proxy for loopback."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    grade = bin_dir / "grade"
    grade.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m grader "$@"\n')
    grade.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower() and k != "GRADER_WEBHOOK_SECRET"}
    env.update(PATH=f"{bin_dir}{os.pathsep}{env['PATH']}",
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])), **extra)
    return env


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def stop(proc: subprocess.Popen, port: int, log: Path) -> None:
    """SIGTERM to the block's process group (the shell and `grade serve`), as Ctrl-C or a service manager does;
    SIGKILL and fail when the port is still open after 30 s."""
    os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while listening(port) and time.monotonic() < deadline:
        time.sleep(0.2)
    still_open = listening(port)
    if still_open:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)
    assert not still_open, f"the server still listened on {port} 30 s after SIGTERM:\n{log.read_text()[-3000:]}"


def test_the_quick_start_starts_a_server_as_written_and_stops(tmp_path, grading_environments):
    for doc, after in ((DOC, "From the checkout:"), (README, "### Running it as a service")):
        block = bash_block(doc, after)
        assert "--port 8000" in block and "grade env build" in block, f"{doc}: the quick start changed: {block}"
        port = free_port()  # 8000 may be taken on a test machine; the rest runs as written
        script = block.replace("8000", str(port))
        workdir = tmp_path / doc.stem
        workdir.mkdir()
        shutil.copytree(ROOT / "rubrics", workdir / "rubrics")  # the quick start runs from the checkout
        log = workdir / "quickstart.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(["bash", "-e", "-c", script], cwd=workdir, env=shell(workdir), stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + 300
            while not LISTENING.search(log.read_text(errors="replace")):
                assert proc.poll() is None and time.monotonic() < deadline, \
                    f"{doc}'s quick start did not start a server (exit {proc.poll()}):\n{log.read_text()[-4000:]}"
                time.sleep(0.2)
            health = httpx.get(f"http://127.0.0.1:{port}/v1/health", trust_env=False, timeout=30)
            assert health.status_code == 200 and health.json()["status"] == "ok", health.text
            said = log.read_text()
            assert "assignments: mnist-s3, mnist-s4, mnist-s5" in said
            shown = [line[2:].removesuffix("...") for line in script.splitlines() if line.startswith("# grade serve:")]
            assert all(line in said for line in shown), f"the start line differs from the doc's {shown}:\n{said}"
            assert (workdir / "grader.db").is_file()
        finally:
            stop(proc, port, log)


def test_the_curl_recipe_signs_a_body_that_ends_in_a_newline(tmp_path):
    block = bash_block(DOC, "With curl and openssl:")
    assert EXAMPLE_URL in block
    with start_server(tmp_path / "server") as server:
        body = tmp_path / "body.json"
        body.write_text(json.dumps(submission("curl-1"), indent=2) + "\n")  # as an editor saves it
        done = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", block.replace(EXAMPLE_URL, server.url)],
                              cwd=tmp_path, env=shell(tmp_path, GRADER_WEBHOOK_SECRET=SECRET), capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        reply = json.loads(done.stdout)
        assert set(reply) == {"id", "status_url"}, f"not a 202: {reply}"
        assert server.wait(reply["id"])["status"] == "graded"


# the error table


def error_table(doc: Path) -> dict[str, str]:
    """code -> the status cell of its row in the doc's error table."""
    text = doc.read_text()
    rows = text[text.index("| status | code | when |"):].split("\n\n")[0].splitlines()[2:]
    table = {}
    for row in rows:
        status, codes = row.split("|")[1:3]
        for code in re.findall(r"`([a-z0-9_]+)`", codes):
            assert code not in table, f"{doc}: `{code}` has two rows in the error table"
            table[code] = status.strip()
    return table


def _name(node: ast.expr):
    return node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else None


def service_error_codes(package: Path) -> tuple[dict[str, set], list[str]]:
    """Every code a ServiceError in `package` can carry, with its statuses (None: decided at run time), and the
    places whose code this reading cannot tell (so that a new way of raising cannot slip past the table)."""
    found: dict[str, set] = {}
    unresolved: list[str] = []
    wrappers: dict[str, tuple[int, object]] = {}  # a helper that passes its parameter on as the code
    trees = {path: ast.parse(path.read_text()) for path in sorted(package.rglob("*.py"))}
    for path, tree in trees.items():
        for func in ast.walk(tree):
            if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            params = [a.arg for a in func.args.args]
            for call in ast.walk(func):
                if not (isinstance(call, ast.Call) and _name(call.func) == "ServiceError"):
                    continue
                status = call.args[0].value if call.args and isinstance(call.args[0], ast.Constant) else None
                code = call.args[1] if len(call.args) > 1 else None
                strings = [n.value for n in ast.walk(code)
                           if isinstance(n, ast.Constant) and isinstance(n.value, str)] \
                    if code is not None else []
                for string in strings:
                    found.setdefault(string, set()).add(status)
                if isinstance(code, ast.Name) and code.id in params:
                    wrappers[func.name] = (params.index(code.id), status)
                elif not strings:
                    unresolved.append(f"{path.relative_to(ROOT)}:{call.lineno}")
    for path, tree in trees.items():
        for call in ast.walk(tree):
            if isinstance(call, ast.Call) and _name(call.func) in wrappers:
                index, status = wrappers[_name(call.func)]
                argument = call.args[index] if len(call.args) > index else None
                if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
                    found.setdefault(argument.value, set()).add(status)
                else:
                    unresolved.append(f"{path.relative_to(ROOT)}:{call.lineno}")
    return found, unresolved


def test_the_error_table_lists_every_code_the_service_returns():
    table = error_table(DOC)
    codes, unresolved = service_error_codes(SERVICE)
    assert not unresolved, f"a ServiceError whose code is not a string literal: {unresolved}; give it one"
    assert len(codes) >= 25, sorted(codes)  # the reading above still finds the service's raises
    missing = sorted(set(codes) - set(table))
    assert not missing, f"{DOC}: the error table has no row for {missing}: add one (status, code, when)"
    stale = sorted(set(table) - set(codes))
    assert not stale, f"{DOC}: the error table lists {stale}, which grader/service never returns: remove them"
    for code, statuses in codes.items():
        for status in statuses - {None}:
            assert table[code] == str(status), f"{DOC}: `{code}` is listed under {table[code]}, but is a {status}"
