"""Test transforms the grader knows: read as plain data where student code runs, built again from torchvision's
own classes in the clean process; anything else is outside the vocabulary and said so (grader/data/transforms.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms as T

from grader.data.preprocess import Preprocess
from grader.data.transforms import STEPS, build, describe, read_transform

NORMALIZE = T.Normalize((0.1307,), (0.3081,))


def _digits(n: int = 12) -> np.ndarray:
    rng = np.random.default_rng(0)
    images = np.zeros((n, 28, 28), np.uint8)
    images[:, 6:22, 10:18] = rng.integers(0, 256, (n, 16, 8), dtype=np.uint8)  # a stroke-like block
    return images


@pytest.mark.parametrize("transform", [
    T.Compose([T.Resize(32), T.CenterCrop(28), T.ToTensor(), NORMALIZE]),
    T.Compose([T.Pad(2, fill=0, padding_mode="reflect"), T.Resize((28, 28), interpolation=T.InterpolationMode.BICUBIC),
               T.Grayscale(1), T.ToTensor(), T.ConvertImageDtype(torch.float64), T.Normalize([0.5], [0.5])]),
    T.Compose([T.Compose([T.Grayscale(3), T.ToTensor()]), T.Normalize(torch.tensor([0.1, 0.2, 0.3]), (1, 2, 3))]),
])
def test_a_known_transform_is_read_as_plain_data_and_replayed_exactly(transform):
    steps, unknown = read_transform(transform)
    assert unknown is None
    json.dumps(steps)  # plain data: what leaves the sandbox is numbers and strings, never the objects
    replay = build(STEPS.validate_python(json.loads(json.dumps(steps))))
    for image in _digits():
        expected = transform(Image.fromarray(image, mode="L"))
        assert torch.equal(replay(image), expected)


def test_the_steps_are_named_in_the_verdict_with_their_arguments():
    steps, _ = read_transform(T.Compose([T.Resize(32), T.CenterCrop(28), T.ToTensor(), NORMALIZE]))
    assert describe(STEPS.validate_python(steps)) == (
        "Resize(size=32) -> CenterCrop(size=[28, 28]) -> ToTensor() -> Normalize(mean=[0.1307], std=[0.3081])")


class _MarkingNormalize(T.Normalize):
    """A subclass keeps the name's look but not the class: it is not replayed as Normalize."""


@pytest.mark.parametrize("transform, named", [
    (T.Compose([T.ToTensor(), T.Lambda(lambda x: x ** 2)]), "`Lambda` is outside"),
    (T.Compose([T.ToTensor(), _MarkingNormalize((0.1,), (0.3,))]), "`_MarkingNormalize` (from "),
    (T.RandomRotation(10), "`RandomRotation` is outside"),
])
def test_anything_else_is_outside_the_vocabulary_and_named(transform, named):
    steps, unknown = read_transform(transform)
    assert steps is None and named in unknown
    assert unknown.endswith("(ToTensor, Normalize, Resize, CenterCrop, Pad, Grayscale, ConvertImageDtype, and "
                            "Compose of these)")


def test_arguments_that_are_not_plain_data_are_refused():
    tf = T.Compose([T.ToTensor(), T.Normalize((0.1,), (0.3,))])
    tf.transforms[1].mean = object()  # the student's process may set anything there
    steps, unknown = read_transform(tf)
    assert steps is None and unknown == ("the arguments of `Normalize` cannot be read as plain data "
                                         "(an argument of type object)")


def test_steps_beyond_their_bounds_make_a_transform_the_grader_does_not_replay():
    """Checked on the host, where the harness record is read: a Resize to 10,000 pixels would not fit in memory."""
    prep = Preprocess.model_validate({"kind": "transforms", "source": "test dataset",
                                      "steps": [{"name": "Resize", "size": 10000}, {"name": "ToTensor"}]})
    assert prep.kind == "other" and prep.steps is None
    assert prep.reason == ("a torchvision transform the grader cannot replay (Resize.size: Input should be less than "
                           "or equal to 256)")
    unknown = Preprocess.model_validate({"kind": "transforms", "steps": [{"name": "Lambda"}]})
    assert unknown.kind == "other" and "cannot replay" in unknown.reason


def test_a_replay_that_gives_no_tensor_says_it_needs_to_tensor():
    replay = build(STEPS.validate_python([{"name": "Resize", "size": 32}]))
    with pytest.raises(ValueError,
                       match=r"gives Image, not a floating-point image tensor \(C, H, W\): it needs ToTensor"):
        replay(_digits(1)[0])


@pytest.mark.usefixtures("bwrap")
def test_an_honest_zoomed_transform_is_replayed_by_the_grader_and_scores_what_it_scores_there(real_mnist_dir):
    """Resize(32) + CenterCrop(28) before Normalize: the clean process builds it again, and the measured accuracy
    is the one these inputs give on the host; the course's plain inputs would give another."""
    from pathlib import Path

    from grader.data.locate import load_mnist
    from grader.pipeline import grade_facts
    from grader.settings import Options, RunLimits

    options = Options(data=str(real_mnist_dir), limits=RunLimits(wall_seconds=180, cell_seconds=60,
                                                                 memory_bytes=3 << 30, max_processes=96,
                                                                 max_file_bytes=200 << 20, output_bytes=2 << 20))
    facts = grade_facts(Path(__file__).parent / "fixtures" / "exec" / "resized_test_transform.ipynb", options)
    assert facts.verdict.kind == "ok", facts.verdict.message
    assert ("the grader made the test inputs from the raw test images with the test transform of the test dataset, "
            "rebuilt from its classes and arguments: Resize(size=32) -> CenterCrop(size=[28, 28]) -> ToTensor() -> "
            "Normalize(mean=[0.1307], std=[0.3081])") in facts.verdict.message
    assert facts.model.stored.flagged == [] and facts.model.ops.unexpected == []

    tf = T.Compose([T.Resize(32), T.CenterCrop(28), T.ToTensor(), NORMALIZE])
    train, test = load_mnist(real_mnist_dir, "train"), load_mnist(real_mnist_dir, "test")
    x = torch.stack([tf(Image.fromarray(im, mode="L")) for im in train.images[:2000]]).flatten(1)
    y = torch.from_numpy(train.labels[:2000].astype(np.int64))
    means = torch.stack([x[y == d].mean(0) for d in range(10)])

    def accuracy(inputs: torch.Tensor) -> float:
        scores = inputs.flatten(1) @ means.T - 0.5 * (means ** 2).sum(1)
        return round(float((scores.argmax(1).numpy() == test.labels).mean() * 100), 4)

    zoomed = accuracy(torch.stack([tf(Image.fromarray(im, mode="L")) for im in test.images]))
    plain = accuracy(torch.from_numpy(test.images.astype(np.float32) / 255 - 0.1307) / 0.3081)
    print(f"measured {facts.eval.accuracy}%, zoomed inputs on the host {zoomed}%, plain inputs {plain}%")
    assert facts.eval.accuracy == pytest.approx(zoomed, abs=0.011) and abs(zoomed - plain) > 1, (zoomed, plain)


class _TestSet(torch.utils.data.Dataset):
    """What the harness looks for in a notebook: a dataset with `data`, `transform` and train=False."""

    def __init__(self, transform):
        self.data, self.transform, self.train = _digits(), transform, False

    def __len__(self):
        return len(self.data)

    def __getitem__(self, i):
        return self.transform(Image.fromarray(self.data[i], mode="L")), 0


def test_the_harness_probe_keeps_affine_maps_reads_known_steps_and_names_the_rest():
    from grader.execute.kernel_harness import probe_preprocessing

    affine = probe_preprocessing({"test_set": _TestSet(T.Compose([T.ToTensor(), NORMALIZE]))}, _digits(16))
    assert affine["kind"] == "affine" and affine["scale"] == pytest.approx(1 / 0.3081, rel=1e-4)
    known = probe_preprocessing({"test_set": _TestSet(T.Compose([T.Resize(32), T.ToTensor()]))}, _digits(16))
    assert known["kind"] == "transforms" and known["source"] == "test dataset"
    assert known["steps"] == [{"name": "Resize", "size": 32, "interpolation": "bilinear", "max_size": None,
                               "antialias": True}, {"name": "ToTensor"}]
    other = probe_preprocessing({"test_set": _TestSet(T.Compose([T.Resize(32), T.ToTensor(),
                                                                 T.Lambda(lambda x: x)]))}, _digits(16))
    assert other["kind"] == "other" and other["reason"] == (
        "one that gives Tensor of shape (1, 32, 32), not a 1x28x28 tensor, and `Lambda` is outside the transforms "
        "the grader replays (ToTensor, Normalize, Resize, CenterCrop, Pad, Grayscale, ConvertImageDtype, and "
        "Compose of these)")
