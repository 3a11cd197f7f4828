"""What `grade serve` says when it cannot start or cannot read a notebook: what, where and what to do."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from grader.service.errors import ServiceError
from grader.service.intake import check_notebook
from tests.fixtures.service.harness import ROOT, RUBRICS, SECRET


def test_a_port_already_in_use_is_a_usage_error_that_says_what_to_do(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "grader", "serve", "--host", "127.0.0.1", "--port", str(port),
                               "--rubrics", str(RUBRICS), "--store", str(tmp_path / "grader.db")],
                              cwd=ROOT, capture_output=True, text=True, timeout=120,
                              env={**os.environ, "GRADER_WEBHOOK_SECRET": SECRET})
    assert done.returncode == 2, done.stderr
    assert f"--host 127.0.0.1 --port {port}: port {port} is already in use on 127.0.0.1" in done.stderr
    assert "choose another --port (--port 0 takes any free port" in done.stderr
    assert "internal error" not in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("data, problem", [
    ({"name": "my-app", "version": "1.0"}, "there is no 'nbformat' field (top-level keys: name, version)"),
    ({"nbformat": 1}, "it says nbformat 1 but has no 'cells' list"),
    ([{"cell_type": "code"}], "the top level is a JSON list"),
])
def test_json_that_is_not_a_notebook_is_422_saying_so(data, problem):
    with pytest.raises(ServiceError) as err:
        check_notebook(json.dumps(data).encode())
    assert (err.value.status, err.value.code, err.value.where) == (422, "invalid_notebook", "notebook")
    assert err.value.what.startswith(f"the notebook is JSON, but not a Jupyter notebook: {problem}")
    assert ".ipynb" in err.value.fix and "converted" not in err.value.what
