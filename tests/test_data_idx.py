"""IDX reading and writing: the bytes on disk, and every way a file can be wrong."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from grader.data import load_mnist
from grader.data.idx import encode_idx, read_images, read_labels, read_split, write_idx
from grader.errors import GraderError

RNG = np.random.default_rng(0)


def images(n: int, side: int = 28) -> np.ndarray:
    return RNG.integers(0, 256, size=(n, side, side), dtype=np.uint8)


@pytest.mark.parametrize("name", ["imgs-idx3-ubyte", "imgs-idx3-ubyte.gz"])
def test_images_round_trip_plain_and_gz(tmp_path: Path, name: str) -> None:
    array = images(5)
    write_idx(tmp_path / name, array)
    assert np.array_equal(read_images(tmp_path / name), array)
    assert read_images(tmp_path / name).dtype == np.uint8


def test_written_header_is_the_idx_header(tmp_path: Path) -> None:
    write_idx(tmp_path / "imgs", images(5))
    data = (tmp_path / "imgs").read_bytes()
    assert len(data) == 16 + 5 * 28 * 28 == 3936
    assert data[:16] == bytes.fromhex("00000803" "00000005" "0000001c" "0000001c")


def test_labels_round_trip_and_header(tmp_path: Path) -> None:
    labels = np.array([7, 2, 1, 0, 4, 9], dtype=np.uint8)
    write_idx(tmp_path / "labels.gz", labels)
    assert gzip.decompress((tmp_path / "labels.gz").read_bytes()) == bytes.fromhex("00000801" "00000006" "070201000409")
    assert read_labels(tmp_path / "labels.gz").tolist() == [7, 2, 1, 0, 4, 9]


def test_gz_output_is_reproducible(tmp_path: Path) -> None:
    array = images(3)
    write_idx(tmp_path / "a.gz", array)
    write_idx(tmp_path / "b.gz", array)
    assert (tmp_path / "a.gz").read_bytes() == (tmp_path / "b.gz").read_bytes()


def test_only_uint8_can_be_written() -> None:
    with pytest.raises(ValueError, match="uint8 only, got float32"):
        encode_idx(np.zeros((2, 28, 28), np.float32))


def error_of(read, path: Path) -> GraderError:
    with pytest.raises(GraderError) as caught:
        read(path)
    assert caught.value.where == str(path)
    return caught.value


def test_labels_file_read_as_images_names_both_magics(tmp_path: Path) -> None:
    write_idx(tmp_path / "labels", np.zeros(4, np.uint8))
    err = error_of(read_images, tmp_path / "labels")
    assert err.what == "magic number 0x00000801 (that is IDX labels), expected 0x00000803 for IDX images"


def test_unknown_magic(tmp_path: Path) -> None:
    (tmp_path / "junk").write_bytes(b"PK\x03\x04" + bytes(20))
    err = error_of(read_labels, tmp_path / "junk")
    assert err.what == "magic number 0x504b0304, expected 0x00000801 for IDX labels"


def test_truncated_images_say_expected_and_found_sizes(tmp_path: Path) -> None:
    write_idx(tmp_path / "imgs", images(5))
    (tmp_path / "imgs").write_bytes((tmp_path / "imgs").read_bytes()[:1000])
    assert error_of(read_images, tmp_path / "imgs").what == "expected 3936 bytes for 5 28x28 images, found 1000"


def test_header_claiming_60000_images_in_a_short_file(tmp_path: Path) -> None:
    (tmp_path / "imgs").write_bytes(struct.pack(">4I", 0x803, 60000, 28, 28) + bytes(984))
    assert error_of(read_images, tmp_path / "imgs").what == "expected 47040016 bytes for 60000 28x28 images, found 1000"


def test_trailing_bytes_are_an_error_too(tmp_path: Path) -> None:
    write_idx(tmp_path / "labels", np.zeros(3, np.uint8))
    (tmp_path / "labels").write_bytes((tmp_path / "labels").read_bytes() + b"\x00")
    assert error_of(read_labels, tmp_path / "labels").what == "expected 11 bytes for 3 labels, found 12"


def test_truncated_content_inside_a_good_gzip(tmp_path: Path) -> None:
    content = encode_idx(images(2))[:500]
    (tmp_path / "imgs.gz").write_bytes(gzip.compress(content))
    err = error_of(read_images, tmp_path / "imgs.gz")
    assert err.what == "expected 1584 bytes for 2 28x28 images, found 500 after decompressing"


def test_cut_gzip_stream(tmp_path: Path) -> None:
    write_idx(tmp_path / "imgs.gz", images(50))
    (tmp_path / "imgs.gz").write_bytes((tmp_path / "imgs.gz").read_bytes()[:3000])
    assert error_of(read_images, tmp_path / "imgs.gz").what.startswith("not a complete gzip file (")


def test_plain_file_named_gz(tmp_path: Path) -> None:
    write_idx(tmp_path / "labels", np.zeros(3, np.uint8))
    (tmp_path / "labels").rename(tmp_path / "labels.gz")
    assert error_of(read_labels, tmp_path / "labels.gz").what.startswith("not a complete gzip file (")


def test_header_shorter_than_a_header(tmp_path: Path) -> None:
    (tmp_path / "imgs").write_bytes(bytes.fromhex("00000803000000"))
    assert error_of(read_images, tmp_path / "imgs").what == "7 bytes is too short for an IDX images header (16 bytes)"


def test_images_that_are_not_28x28(tmp_path: Path) -> None:
    write_idx(tmp_path / "imgs", images(2, side=32))
    assert error_of(read_images, tmp_path / "imgs").what == "images are 32x32, expected 28x28"


def test_label_out_of_range(tmp_path: Path) -> None:
    write_idx(tmp_path / "labels", np.array([1, 2, 12, 3, 15], np.uint8))
    assert error_of(read_labels, tmp_path / "labels").what == "2 labels outside 0-9 (first: 12 at index 2)"


def test_missing_file(tmp_path: Path) -> None:
    err = error_of(read_labels, tmp_path / "t10k-labels-idx1-ubyte")
    assert err.what == "file not found"
    assert "grade data fetch" in err.fix


def test_a_folder_where_a_file_should_be(tmp_path: Path) -> None:
    (tmp_path / "t10k-images-idx3-ubyte").mkdir()
    assert error_of(read_images, tmp_path / "t10k-images-idx3-ubyte").what == "cannot read the file: Is a directory"


def test_image_and_label_counts_must_agree(tmp_path: Path) -> None:
    write_idx(tmp_path / "imgs", images(5))
    write_idx(tmp_path / "labels", np.zeros(4, np.uint8))
    with pytest.raises(GraderError) as caught:
        read_split(tmp_path / "imgs", tmp_path / "labels")
    assert caught.value.what == "5 images but 4 labels in labels"
    assert caught.value.where == str(tmp_path / "imgs")


def test_errors_render_file_problem_and_fix(tmp_path: Path) -> None:
    write_idx(tmp_path / "imgs", images(1))
    (tmp_path / "imgs").write_bytes((tmp_path / "imgs").read_bytes()[:100])
    rendered = error_of(read_images, tmp_path / "imgs").render()
    assert rendered.startswith(f"{tmp_path / 'imgs'}: expected 800 bytes for 1 28x28 images, found 100\n  -> ")
    assert "grade data fetch" in rendered


@pytest.mark.parametrize(("split", "count", "first"), [("test", 10_000, [7, 2, 1, 0, 4]),
                                                       ("train", 60_000, [5, 0, 4, 1, 9])])
def test_real_mnist(real_mnist_dir: Path, split: str, count: int, first: list[int]) -> None:
    data = load_mnist(real_mnist_dir, split)
    assert data.images.shape == (count, 28, 28) and data.images.dtype == np.uint8
    assert data.labels.shape == (count,) and len(data) == count
    assert data.labels[:5].tolist() == first
    assert sorted(set(data.labels.tolist())) == list(range(10))
    assert data.images.min() == 0 and data.images.max() == 255
