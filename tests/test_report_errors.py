"""Reports that explain: the failing cell's error in the verdict box (type, message, the student's own traceback
lines, a hint from the table of the course's common errors), the box coloured by the outcome, predictions that
collapse to one digit or to chance said in one sentence, and per-digit bars that do not alarm.

The report tests render facts from a real run: a notebook whose training loop crashes on its first batch with
PyTorch 0.3's `loss.data[0]`, graded by the pipeline in the sandbox (`crashed_run`; test_report_browser.py
renders its report in headless Chromium).
"""

from __future__ import annotations

import re
from html import unescape

import nbformat
import numpy as np
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from grader.data import load_mnist
from grader.execute.cell_error import LINE_CHARS, MESSAGE_CHARS, TRACEBACK_LINES, cell_error, student_traceback
from grader.execute.hints import hint_for
from grader.facts import EvalFacts, Facts, GradingFacts, VerdictFacts
from grader.pipeline import grade_facts
from grader.report import plots, write_student_reports
from grader.report.summary import build_view, prediction_summary, verdict_state
from grader.rubric.load import load_rubric
from grader.rubric.score import score
from grader.rubric.sheet import ScoreSheet
from grader.settings import Options, RunLimits

# --- the table of common errors ---------------------------------------------------------------------------------

@pytest.mark.parametrize("error, says", [
    ("IndexError: invalid index of a 0-dim tensor. Use `tensor.item()` in Python or `tensor.item<T>()` in C++ to "
     "convert a 0-dim tensor to a number", "`loss.item()`"),
    ("AssertionError: Torch not compiled with CUDA enabled", "torch.cuda.is_available() else 'cpu'"),
    ("RuntimeError: Found no NVIDIA driver on your system.", "torch.cuda.is_available() else 'cpu'"),
    ("AttributeError: '_SingleProcessDataLoaderIter' object has no attribute 'next'", "`next(dataiter)`"),
    ("RuntimeError: mat1 and mat2 shapes cannot be multiplied (64x320 and 500x10)", "flattened size"),
    ("RuntimeError: size mismatch, m1: [64 x 320], m2: [500 x 10]", "flattened size"),
    ("ValueError: Expected input batch_size (16) to match target batch_size (64).", "x.view(x.size(0), -1)"),
    ("RuntimeError: Expected 3D (unbatched) or 4D (batched) input to conv2d, but got input of size: [64, 784]",
     "(batch, channels, height, width)"),
    ("RuntimeError: Expected 4-dimensional input for 4-dimensional weight [8, 1, 3, 3]", "(batch, channels"),
    ("RuntimeError: Given groups=1, weight of size [8, 1, 3, 3], expected input[64, 3, 28, 28] to have 1 channels, "
     "but got 3 channels instead", "MNIST has 1 channel"),
    ("RuntimeError: expected scalar type Long but found Float", "`torch.long`"),
    ("RuntimeError: Can't call numpy() on Tensor that requires grad. Use tensor.detach().numpy() instead.",
     ".detach().cpu().numpy()"),
    ("RuntimeError: element 0 of tensors does not require grad and does not have a grad_fn", "not connected"),
    ("TypeError: Variable() got an unexpected keyword argument 'volatile'", "torch.no_grad()"),
    ("UnpicklingError: Weights only load failed. This file can still be loaded", "weights_only=False"),
    ("ModuleNotFoundError: No module named 'torchsummary'", "sum(p.numel() for p in model.parameters()"),
])
def test_the_course_s_common_errors_each_get_what_to_change(error, says):
    assert says in (hint_for(error) or ""), error


def test_an_error_outside_the_table_gets_no_hint():
    assert hint_for("NameError: name 'modle' is not defined") is None
    assert hint_for("KeyError: 'volatile_sum'") is None  # a word inside a name is not the old API


# --- the student's own traceback --------------------------------------------------------------------------------

THROUGH_TORCH = """\
---------------------------------------------------------------------------
RuntimeError                              Traceback (most recent call last)
Cell In[6], line 4
      2 for x, y in train_loader:
      3     opt.zero_grad()
----> 4     out = model(x)

File /usr/lib/python3/dist-packages/torch/nn/modules/module.py:1739, in Module._wrapped_call_impl(self, *args)
   1737     return self._compiled_call_impl(*args, **kwargs)  # type: ignore[misc]
-> 1739     return self._call_impl(*args, **kwargs)

Cell In[3], line 9, in Net.forward(self, x)
      8 x = self.conv(x).view(-1, 500)
----> 9 return self.head(x)

File /srv/grader/jobs/j1/work/layers.py:14, in Head.forward(self, x)
     13 def forward(self, x):
---> 14     return self.fc(x)

File /opt/venv/lib/python3.11/site-packages/torch/nn/modules/linear.py:125, in Linear.forward(self, input)
--> 125     return F.linear(input, self.weight, self.bias)

File /work/main/grader/execute/compat/torch1.py:40, in _shim(*args)
---> 40     return original(*args)

RuntimeError: mat1 and mat2 shapes cannot be multiplied (64x320 and 500x10)"""


def test_the_traceback_keeps_the_student_s_cells_and_modules_and_names_cells_as_the_student_counts_them():
    error = "RuntimeError: mat1 and mat2 shapes cannot be multiplied (64x320 and 500x10)"
    lines = student_traceback(THROUGH_TORCH, cell=5, error=error)
    # In[6] is code cell 5 (the grader's set-up cell ran first), so In[3] is code cell 2
    assert [ln for ln in lines if not ln.startswith(" ") and not ln.startswith("-")] == [
        "code cell 5, line 4", "code cell 2, line 9, in Net.forward(self, x)",
        "File /srv/grader/jobs/j1/work/layers.py:14, in Head.forward(self, x)"]
    assert "----> 4     out = model(x)" in lines and "---> 14     return self.fc(x)" in lines
    text = "\n".join(lines)
    assert "torch/nn" not in text and "_call_impl" not in text and "F.linear" not in text  # library frames
    assert "_shim" not in text and "original(*args)" not in text  # the grader's own
    assert "mat1 and mat2" not in text  # the error line is shown on its own, not twice


# What Colab's IPython 7 saved for the same mistake: other frame headers, module frames without `File`.
COLAB_TRACEBACK = """\
---------------------------------------------------------------------------
RuntimeError                              Traceback (most recent call last)
<ipython-input-12-5d1c2a9b7e31> in <module>()
      3     opt.zero_grad()
----> 4     out = model(x)

/usr/local/lib/python3.7/dist-packages/torch/nn/modules/module.py in _call_impl(self, *input, **kwargs)
-> 1051             return forward_call(*input, **kwargs)

<ipython-input-9-0a1b2c3d4e5f> in forward(self, x)
----> 9         return self.fc(x)

/usr/local/lib/python3.7/dist-packages/torch/nn/modules/linear.py in forward(self, input)
--> 96         return F.linear(input, self.weight, self.bias)

RuntimeError: mat1 and mat2 shapes cannot be multiplied (64x320 and 500x10)"""


def test_a_colab_saved_traceback_is_read_too_with_cells_named_by_their_saved_counts():
    lines = student_traceback(COLAB_TRACEBACK, cell=6, counts={12: 6, 9: 4})
    assert lines == ["code cell 6 in <module>()", "      3     opt.zero_grad()", "----> 4     out = model(x)",
                     "code cell 4 in forward(self, x)", "----> 9         return self.fc(x)"]
    old = "Input In [12], in <cell line: 4>()\n----> 4 out = model(x)\n"
    assert student_traceback(old, cell=6, counts={12: 6})[0] == "code cell 6, in <cell line: 4>()"


def test_the_error_fact_splits_type_and_message_and_carries_the_hint():
    fact = cell_error(5, "RuntimeError: mat1 and mat2 shapes cannot be multiplied (64x320 and 500x10)", THROUGH_TORCH)
    assert (fact.cell, fact.type) == (5, "RuntimeError")
    assert fact.message == "mat1 and mat2 shapes cannot be multiplied (64x320 and 500x10)"
    assert "flattened size" in fact.hint and fact.traceback[0] == "code cell 5, line 4"
    timeout = cell_error(2, "the cell ran longer than 10 s")
    assert timeout.type is None and timeout.message == "the cell ran longer than 10 s" and timeout.traceback == []


HOSTILE = "<script>alert('pwned')</script><img src=x onerror=alert(1)>"


def _hostile_facts() -> tuple[Facts, ScoreSheet]:
    """A cell whose exception carries markup and a megabyte of message, with a traceback of a thousand frames."""
    message = HOSTILE + "A" * 1_000_000
    frames = "".join(f"Cell In[{k}], line 1\n----> 1 {HOSTILE} f{k}()\n\n" for k in range(2, 1002))
    error = cell_error(1, f"ValueError: {message}", f"ValueError    Traceback\n{frames}ValueError: {message}")
    facts = Facts(verdict=VerdictFacts(kind="crash", cell=1, failed_cells=[1], error=error,
                                       message="code cell 1 failed"))
    return facts, score(facts, load_rubric("mnist-s3"))


def test_a_hostile_error_is_cut_to_size_and_escaped_in_both_reports(tmp_path):
    facts, sheet = _hostile_facts()
    error = facts.verdict.error
    assert len(error.message) < MESSAGE_CHARS + 60 and "(999,459 more characters not shown)" in error.message
    assert len(error.traceback) == TRACEBACK_LINES + 1 and error.traceback[0] == "…"
    assert all(len(line) <= LINE_CHARS + 60 for line in error.traceback)
    paths = write_student_reports(tmp_path, "hostile", facts, sheet, execution_time=1.0)
    page = paths["html"].read_text()
    assert len(page) < 60_000
    assert "<script>alert" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(&#39;pwned&#39;)&lt;/script&gt;" in page  # shown, as text
    md = paths["markdown"].read_text()
    # in Markdown the error and its lines are code (a fence longer than any backtick run in them): shown as text
    prose = re.sub(r"^(`{3,})text\n.*?^\1$", "", md, flags=re.S | re.M)
    assert len(md) < 60_000 and "<script>alert('pwned')" in md
    assert "<script>" not in prose and "<img" not in prose


# --- the outcome's colour ---------------------------------------------------------------------------------------

def _sheet(passed: bool, not_judged: tuple[str, ...] = ()) -> ScoreSheet:
    return ScoreSheet(rubric="r", title="t", score=1, max_score=2, passed=passed, items=[], not_judged=list(not_judged))


@pytest.mark.parametrize("kind, failed, passed, not_judged, state", [
    ("ok", [], True, (), "good"),
    ("ok", [3], True, (), "warn"),  # passed, but a cell raised
    ("ok", [], False, (), "warn"),  # ran cleanly, did not pass
    ("ok", [3], False, (), "bad"),  # a crashed training loop: ran on, measured an untrained model
    ("crash", [3], False, (), "bad"),
    ("timeout", None, False, (), "bad"),
    ("ok", [], False, ("accuracy",), "missing"),  # a dry run: nothing judged yet
    (None, None, False, ("accuracy",), "missing"),  # a static check
    ("grader_failed", None, False, (), "missing"),  # not the student's doing
])
def test_the_verdict_box_is_green_only_for_a_clean_passing_run(kind, failed, passed, not_judged, state):
    assert verdict_state(kind, failed, _sheet(passed, not_judged)) == state


# --- one sentence for collapsed predictions ---------------------------------------------------------------------

def _confusion(predicted_for: dict[int, int], size: int = 1000) -> list[list[int]]:
    """Each true digit's `size` images: all predicted right, except where `predicted_for` sends them all to a digit."""
    matrix = np.diag([size] * 10)
    for true, digit in predicted_for.items():
        matrix[true] = 0
        matrix[true, digit] = size
    return matrix.tolist()


def test_predictions_that_are_one_digit_for_every_image_are_one_sentence():
    every = _confusion({d: 7 for d in range(10)})
    assert prediction_summary(every, 10.0) == (
        "The model predicts 7 for every test image; accuracy 10.00% is chance level (a guess is right for one "
        "image in ten): it has not learned to tell the digits apart.")


def test_predictions_mostly_one_digit_give_the_share():
    most = _confusion({d: 7 for d in range(10) if d != 3})  # digit 3 still right: 90% are 7
    assert prediction_summary(most, 20.0) == "The model predicts 7 for 90% of the test images; accuracy 20.00%."


def test_chance_without_a_favourite_digit_is_said_and_a_good_model_gets_no_sentence():
    spread = np.full((10, 10), 100).tolist()
    assert prediction_summary(spread, 10.0).startswith("Accuracy 10.00% is chance level")
    assert prediction_summary(_confusion({}), 100.0) is None
    assert prediction_summary(_confusion({4: 9}), 90.0) is None  # one digit wrong is for the matrix to show
    assert prediction_summary(None, 99.0) is None and prediction_summary([[1, 2], [3]], 50.0) is None


# --- per-digit bars ---------------------------------------------------------------------------------------------

def _bar_heights(png: bytes) -> list[int]:
    """The height in pixels of each bar (the accent colour) of a per-digit chart, left to right."""
    import io

    from matplotlib.image import imread

    image = (imread(io.BytesIO(png))[..., :3] * 255).round().astype(int)
    accent = np.all(np.abs(image - [0x3b, 0x5b, 0xdb]) <= 2, axis=-1)
    columns = np.flatnonzero(accent.any(axis=0))
    bars = np.split(columns, np.flatnonzero(np.diff(columns) > 1) + 1)
    return [int(accent[:, bar].any(axis=1).sum()) for bar in bars]


def test_per_digit_bars_sit_on_a_fixed_0_to_100_axis_so_a_small_gap_looks_small():
    heights = _bar_heights(plots.per_class_png([99.6, 98.9] + [99.4] * 8, 99.3))
    assert len(heights) == 10
    # 98.9% is 99.3% as tall as 99.6%: within two pixels, not a cliff
    assert max(heights) - min(heights) <= 2, heights
    collapsed = _bar_heights(plots.per_class_png([0, 0, 100] + [0] * 7, 10.3))
    assert len(collapsed) == 1  # one bar at 100%, the others at zero


# --- a real crashing run, graded and reported -------------------------------------------------------------------

CRASHING = [
    "# a small CNN, seeded\nimport torch, torch.nn as nn, torch.nn.functional as F\n"
    "from torchvision import datasets, transforms\ntorch.manual_seed(5)\n"
    "class Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
    "        self.c1 = nn.Conv2d(1, 8, 3)\n        self.c2 = nn.Conv2d(8, 10, 3)\n"
    "    def forward(self, x):\n        x = self.c2(F.relu(self.c1(x)))\n"
    "        return F.log_softmax(F.adaptive_avg_pool2d(x, 1).flatten(1), -1)\nmodel = Net()",
    "# a few hundred training images\nt = transforms.Compose([transforms.ToTensor(), "
    "transforms.Normalize((0.1307,), (0.3081,))])\n"
    "train = torch.utils.data.Subset(datasets.MNIST('../data', train=True, download=True, transform=t), range(256))\n"
    "train_loader = torch.utils.data.DataLoader(train, batch_size=64)",
    "# train, PyTorch 0.3 style\nopt = torch.optim.SGD(model.parameters(), lr=0.01)\nfor x, y in train_loader:\n"
    "    opt.zero_grad()\n    loss = F.nll_loss(model(x), y)\n    loss.backward()\n    opt.step()\n"
    "    print(loss.data[0])",
]
ZERO_DIM = "IndexError: invalid index of a 0-dim tensor"


@pytest.fixture(scope="module")
def crashed_run(bwrap, real_mnist_dir, tmp_path_factory):
    """(facts, sheet, report folder) of the crashing notebook, graded in execute mode against mnist-s3."""
    tmp = tmp_path_factory.mktemp("crashed")
    nb = new_notebook(cells=[new_markdown_cell("# my S3")] + [new_code_cell(c) for c in CRASHING])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp / "crashing.ipynb"
    nbformat.write(nb, str(path))
    options = Options(data=str(real_mnist_dir), limits=RunLimits(
        wall_seconds=180, cell_seconds=60, memory_bytes=2 << 30, max_processes=96, max_file_bytes=50 << 20,
        output_bytes=2 << 20))
    facts = grade_facts(path, options)
    sheet = score(facts, load_rubric("mnist-s3"))
    test = load_mnist(real_mnist_dir, "test")
    paths = write_student_reports(tmp / "out", "crashing", facts, sheet, images=test.images,
                                  labels=test.labels.astype(np.int64), execution_time=1.0)
    return facts, sheet, paths


def test_the_crash_is_a_fact_with_the_student_s_line_and_the_hint(crashed_run):
    facts, sheet, _ = crashed_run
    error = facts.verdict.error
    assert facts.verdict.kind == "ok" and facts.verdict.failed_cells == [3]  # the rest ran on: a model was measured
    assert (error.cell, error.type) == (3, "IndexError") and error.message.startswith("invalid index of a 0-dim")
    assert error.traceback[0] == "code cell 3, line 8"
    assert any("print(loss.data[0])" in line for line in error.traceback)
    assert "`loss.item()`" in error.hint
    assert facts.eval.accuracy <= 15 and sheet.passed is False


def test_the_crashing_student_s_reports_quote_the_error_and_say_what_to_change(crashed_run):
    facts, sheet, paths = crashed_run
    page = unescape(paths["html"].read_text())
    box = re.search(r'<section class="card verdict (\w+)" id="verdict">(.*?)</section>', page, re.S)
    assert box.group(1) == "bad"  # red: not the green of a clean run
    assert "The notebook ran to the end, but code cell 3 raised an error." in box.group(2)
    assert f"{ZERO_DIM}. Use `tensor.item()`" in box.group(2) and "print(loss.data[0])" in box.group(2)
    assert "What to change:</b> Losses are 0-dim tensors" in box.group(2)
    sentence = build_view(facts, sheet, student="s").evaluation.predictions
    assert sentence and sentence.startswith("The model predicts ") and "is chance level" in sentence
    assert sentence in page
    assert "Confusion matrix" not in page and "Misclassified digits" not in page  # the sentence says it
    assert "Accuracy per digit" in page
    md = paths["markdown"].read_text()
    assert ZERO_DIM in md and "print(loss.data[0])" in md and "**What to change:** Losses are 0-dim" in md
    assert sentence in md and "true \\ predicted" not in md and "Misclassified (first" not in md


def test_the_rubric_s_advice_is_the_hint_not_restart_and_run_all(crashed_run):
    _, sheet, _ = crashed_run
    items = {i.id: i for i in sheet.items}
    assert "loss.item()" in items["no-errors"].feedback and "Run All" not in items["no-errors"].feedback
    assert "Fix the error in code cell 3 first" in items["accuracy"].feedback
    assert "normalisation" not in items["accuracy"].feedback


def test_chance_accuracy_without_an_error_gets_advice_about_training_not_normalisation():
    facts = Facts(grading=GradingFacts(mode="execute"), eval=EvalFacts(accuracy=10.1),
                  verdict=VerdictFacts(kind="ok", failed_cells=[]))
    feedback = {i.id: i for i in score(facts, load_rubric("mnist-s3")).items}["accuracy"].feedback
    assert "chance level" in feedback and "`optimizer.step()`" in feedback and "normalisation" not in feedback


# What Jupyter saved when the student ran the crashing cell (execution count 3), colours and all.
SAVED_TRACEBACK = [
    "\x1b[0;31m---------------------------------------------------------------------------\x1b[0m",
    "\x1b[0;31mIndexError\x1b[0m                                Traceback (most recent call last)",
    "Cell \x1b[0;32mIn[3], line 8\x1b[0m\n\x1b[1;32m      6\x1b[0m loss\x1b[38;5;241m.\x1b[39mbackward()\n"
    "\x1b[1;32m      7\x1b[0m opt\x1b[38;5;241m.\x1b[39mstep()\n\x1b[0;32m----> 8\x1b[0m \x1b[38;5;28mprint\x1b[39m("
    "\x1b[43mloss\x1b[49m\x1b[38;5;241;43m.\x1b[39;49m\x1b[43mdata\x1b[49m\x1b[43m[\x1b[49m\x1b[38;5;241;43m0"
    "\x1b[39;49m\x1b[43m]\x1b[49m)\n",
    "\x1b[0;31mIndexError\x1b[0m: invalid index of a 0-dim tensor. Use `tensor.item()` in Python or `tensor.item<T>()`"
    " in C++ to convert a 0-dim tensor to a number",
]


def test_a_static_check_shows_the_error_the_saved_outputs_hold(tmp_path):
    nb = new_notebook(cells=[new_code_cell(c, execution_count=n) for n, c in enumerate(CRASHING, 1)])
    nb.cells[2].outputs = [nbformat.v4.new_output("error", ename="IndexError", traceback=SAVED_TRACEBACK,
                                                  evalue="invalid index of a 0-dim tensor. Use `tensor.item()` in "
                                                         "Python or `tensor.item<T>()` in C++ to convert a 0-dim "
                                                         "tensor to a number")]
    path = tmp_path / "saved.ipynb"
    nbformat.write(nb, str(path))
    facts = grade_facts(path, Options(mode="static"))
    assert facts.notebook.saved_error_cells == [3]
    saved = facts.notebook.saved_error
    assert (saved.cell, saved.type) == (3, "IndexError") and "`loss.item()`" in saved.hint
    assert saved.traceback == ["code cell 3, line 8", "      6 loss.backward()", "      7 opt.step()",
                               "----> 8 print(loss.data[0])"]  # no colour codes
    sheet = score(facts, load_rubric("mnist-s3"))
    page = unescape(write_student_reports(tmp_path / "out", "saved", facts, sheet, execution_time=1.0)["html"]
                    .read_text())
    box = re.search(r'<section class="card verdict (\w+)" id="verdict">(.*?)</section>', page, re.S)
    assert box.group(1) == "missing"  # grey: nothing ran, nothing is judged as passed or failed
    assert "Its saved outputs show an error in code cell 3" in box.group(2)
    assert f"{ZERO_DIM}. Use `tensor.item()`" in box.group(2) and "----> 8 print(loss.data[0])" in box.group(2)
    assert "What to change:</b> Losses are 0-dim tensors" in box.group(2)
