"""Unseen digits: QMNIST's test digits beyond MNIST's, downloaded on first use and checksummed (grader/data/
qmnist.py), measured in the clean process like the test set (eval.unseen_accuracy, eval.unseen_gap), opt-in so that
CI never downloads. There is no internet here: the files are small IDX files made by the test, served on 127.0.0.1."""

from __future__ import annotations

import gzip
import hashlib
import struct
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import torch

from grader.data import qmnist
from grader.data.idx import encode_idx
from grader.errors import GraderError
from grader.facts import Facts, with_derived

ROWS = qmnist.MNIST_PART + 4  # 10,000 digits standing for MNIST's, then four unseen ones


def _qmnist_files(folder: Path) -> dict[str, str]:
    """QMNIST-shaped files (images idx3-ubyte, labels idx2-int with 8 columns), gzipped; their md5s."""
    images = np.zeros((ROWS, 28, 28), np.uint8)
    labels = np.zeros((ROWS, 8), ">i4")
    labels[:, 0] = np.arange(ROWS) % 10
    for i in range(ROWS):
        images[i, 0, : labels[i, 0] + 1] = 255  # the digit d lights d + 1 pixels of the first row
    labels[:, 5] = np.arange(ROWS)  # other columns (NIST ids) are not read
    folder.mkdir(parents=True, exist_ok=True)
    (folder / qmnist.IMAGES).write_bytes(gzip.compress(encode_idx(images), mtime=0))
    (folder / qmnist.LABELS).write_bytes(gzip.compress(struct.pack(">III", 0x0C02, ROWS, 8)
                                                       + labels.tobytes(), mtime=0))
    return {name: hashlib.md5((folder / name).read_bytes()).hexdigest() for name in (qmnist.IMAGES, qmnist.LABELS)}


@pytest.fixture
def served(tmp_path, monkeypatch):
    """The files on a local web server, the module pointed at it, and the cache in tmp_path."""
    md5 = _qmnist_files(tmp_path / "www")
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(SimpleHTTPRequestHandler, directory=str(tmp_path / "www")))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setattr(qmnist, "BASE_URL", f"http://127.0.0.1:{server.server_port}/")
    monkeypatch.setattr(qmnist, "MD5", md5)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    yield server
    server.shutdown()


def test_the_unseen_digits_are_downloaded_once_checked_and_only_those_beyond_mnist(served, tmp_path):
    unseen = qmnist.ensure_unseen()
    assert len(unseen) == 4 and unseen.images.shape == (4, 28, 28)
    assert unseen.labels.tolist() == [0, 1, 2, 3]  # rows 10,000.. : their digits, column 0 of the int labels
    assert [int(im[0].sum()) // 255 for im in unseen.images] == [1, 2, 3, 4]
    assert qmnist.qmnist_dir() == tmp_path / "cache" / "mnist-grader" / "qmnist"
    served.shutdown()  # the second use reads the cache: no network
    assert qmnist.ensure_unseen().labels.tolist() == [0, 1, 2, 3]


def test_a_download_that_does_not_match_its_md5_is_refused_and_nothing_is_left(served, monkeypatch):
    monkeypatch.setattr(qmnist, "MD5", {**qmnist.MD5, qmnist.LABELS: "0" * 32})
    with pytest.raises(GraderError) as err:
        qmnist.ensure_unseen()
    assert f"{qmnist.LABELS} has md5" in err.value.what and "expected 00000000" in err.value.what
    assert "grade without unseen digits (drop --unseen / the rubric's unseen: true)" in err.value.fix
    assert not any(qmnist.qmnist_dir().glob("qmnist-*"))  # never a half-fetched pair under the final names


def test_a_cached_file_that_changed_is_downloaded_again(served):
    qmnist.ensure_unseen()
    (qmnist.qmnist_dir() / qmnist.IMAGES).write_bytes(b"not gzip")
    assert len(qmnist.ensure_unseen()) == 4
    (qmnist.qmnist_dir() / qmnist.LABELS).write_bytes(b"\x00")
    with pytest.raises(GraderError, match="missing or not the file QMNIST publishes"):
        qmnist.load_unseen(qmnist.qmnist_dir())


def test_the_shipped_digests_are_torchvisions():
    from torchvision.datasets import QMNIST

    assert dict((url.rsplit("/", 1)[1], md5) for url, md5 in QMNIST.resources["test"]) == qmnist.MD5
    assert all(url.startswith(qmnist.BASE_URL) for url, _ in QMNIST.resources["test"])


def test_unseen_digits_are_opt_in_from_the_rubric_or_the_command_line():
    from grader.api import options_for
    from grader.cli.common import run_overrides
    from grader.cli.main import build_parser
    from grader.rubric.load import load_rubric

    rubric = load_rubric("mnist-s3")
    assert rubric.unseen is False and options_for(rubric).unseen is False  # CI and the shipped rubrics never download
    assert options_for(rubric.model_copy(update={"unseen": True})).unseen is True
    args = build_parser().parse_args(["check", "nb.ipynb", "--unseen"])
    assert run_overrides(args, rubric.limits.run_limits())["unseen"] is True


def test_the_gap_is_derived_and_a_gap_over_one_point_is_flagged_in_the_report():
    from grader.report import render_markdown
    from grader.rubric.load import load_rubric
    from grader.rubric.score import score
    from tests.test_report_markdown import _table

    facts = with_derived(Facts.model_validate({"eval": {"accuracy": 99.5, "unseen_accuracy": 97.25},
                                               "verdict": {"kind": "ok"}}))
    assert facts.eval.unseen_gap == 2.25
    row = {r[0]: r for r in _table(render_markdown(facts, score(facts, load_rubric("mnist-s3")), student="x"),
                                   "| Fact |")}["Accuracy on unseen digits"]
    assert row[1] == "97.25%" and "+2.25 points from the test accuracy to this: more than 1 point lower" in row[2]
    honest = with_derived(Facts.model_validate({"eval": {"accuracy": 99.1, "unseen_accuracy": 98.7}}))
    assert honest.eval.unseen_gap == 0.4
    md = render_markdown(honest, score(honest, load_rubric("mnist-s3")), student="y")
    assert "+0.40 points from the test accuracy to this |" in md and "more than 1 point" not in md
    assert "unseen digits" not in render_markdown(Facts(), score(Facts(), load_rubric("mnist-s3")), student="z")


class _FirstRowCount(torch.nn.Module):
    """Predicts the digit as (lit pixels of the first row) - 1: right on the generated digits, by construction.

    One linear layer over the first row, made of operators a CNN uses (the clean evaluation credits no other):
    with c lit pixels, argmax_k -(c - 1 - k)^2 = argmax_k 2k(c - 1) - k^2, which is linear in the row's sum s
    of normalised pixels, c = (s - 28 * off) / (on - off)."""

    def __init__(self):
        super().__init__()
        off, on = (0 - 0.1307) / 0.3081, (1 - 0.1307) / 0.3081  # the course's Normalize, as the grader applies it
        k = torch.arange(10.0)
        self.head = torch.nn.Linear(28, 10)
        with torch.no_grad():
            self.head.weight.copy_((2 * k / (on - off)).unsqueeze(1).expand(10, 28))
            self.head.bias.copy_(-2 * k * 28 * off / (on - off) - 2 * k - k ** 2)

    def forward(self, x):
        return self.head(x[:, 0, 0, :])


@pytest.mark.usefixtures("bwrap")
def test_the_clean_process_measures_the_unseen_digits_like_the_test_set(served, tmp_path):
    from grader.data.staging import TEST_IMAGES, UNSEEN_IMAGES
    from grader.evaluate.job import evaluate_model
    from grader.sandbox.readback import Folder
    from grader.settings import Options

    unseen = qmnist.ensure_unseen()
    staged = tmp_path / "staged"
    staged.mkdir()
    test_images = np.zeros((20, 28, 28), np.uint8)
    test_labels = np.arange(20) % 10
    for i, d in enumerate(test_labels):
        test_images[i, 0, : d + 1] = 255
    np.save(staged / TEST_IMAGES, test_images)
    np.save(tmp_path / UNSEEN_IMAGES, unseen.images)
    program = torch.export.export(_FirstRowCount().eval(), (torch.zeros(2, 1, 28, 28),),
                                  dynamic_shapes=({0: torch.export.Dim("batch", min=2, max=100000)},), strict=False)
    torch.export.save(program, tmp_path / "model.pt2")
    from grader.data.preprocess import COURSE_PREPROCESS

    wrong = unseen.labels.copy()
    wrong[0] = 9  # one of the four unseen labels disagrees with what the model answers: 75%
    (tmp_path / "job").mkdir()
    with Folder(tmp_path) as folder:
        evaluation = evaluate_model(folder, "model.pt2", "export", Options(warm=True), preprocess=COURSE_PREPROCESS,
                                    staged=staged, labels=test_labels, jobdir=tmp_path / "job",
                                    unseen=(tmp_path / UNSEEN_IMAGES, wrong))
    assert evaluation.error is None, evaluation.error
    assert evaluation.eval.accuracy == 100.0 and evaluation.eval.unseen_accuracy == 75.0
    with Folder(tmp_path) as folder:
        evaluation = evaluate_model(folder, "model.pt2", "export", Options(warm=True), preprocess=COURSE_PREPROCESS,
                                    staged=staged, labels=test_labels, jobdir=tmp_path / "job2")
    assert evaluation.eval.unseen_accuracy is None  # not asked for: not measured


@pytest.mark.usefixtures("bwrap")
def test_an_opted_in_run_stages_the_unseen_digits_apart_and_reports_them_with_the_gap(served, tmp_path,
                                                                                        real_mnist_dir):
    """Through the pipeline: `Options(unseen=True)` loads them once, outside the folder notebooks' sandboxes see."""
    from grader.data.staging import prepare_test_data
    from grader.pipeline import grade_facts
    from grader.settings import Options

    data = prepare_test_data(str(real_mnist_dir), unseen=True)
    assert data.unseen.labels.tolist() == [0, 1, 2, 3] and np.array_equal(np.load(data.unseen_images),
                                                                          data.unseen.images)
    assert not data.unseen_images.is_relative_to(data.staged)  # bound into the clean evaluation only
    program = torch.export.export(_FirstRowCount().eval(), (torch.zeros(2, 1, 28, 28),),
                                  dynamic_shapes=({0: torch.export.Dim("batch", min=2, max=100000)},), strict=False)
    torch.export.save(program, tmp_path / "first_row.pt2")
    facts = grade_facts(tmp_path / "first_row.pt2", Options(data=str(real_mnist_dir), unseen=True), data=data)
    assert facts.eval.unseen_accuracy == 100.0 and facts.eval.accuracy is not None, facts.verdict.message
    assert facts.eval.unseen_gap == round(facts.eval.accuracy - 100.0, 4)
    without = grade_facts(tmp_path / "first_row.pt2", Options(data=str(real_mnist_dir)), data=data)
    assert without.eval.unseen_accuracy is None and without.eval.accuracy == facts.eval.accuracy
