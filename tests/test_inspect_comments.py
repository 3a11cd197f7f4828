"""Comment detection per code cell: what counts as a comment and which cells need one."""

from __future__ import annotations

import pytest

from grader.inspect.comments import comment_report, has_comment
from grader.inspect.source import split_cell


def commented(source: str) -> bool:
    return has_comment(split_cell(source))


@pytest.mark.parametrize(
    "source",
    [
        "# load the data\ntrain = load()",
        "x = 1  # trailing comment",
        '"""Docstring-style cell comment."""\nx = 1',
        "'single-quoted bare string'\nx = 1",
        '("implicitly " "concatenated")\nx = 1',
        'def f():\n    """The docstring of a function."""\n    return 1',
        "class Net:\n    '''Docstring of a class.'''",
        "# class Net2(nn.Module):\n#     def __init__(self):\n#         super().__init__()",
        "# x = 1",
        "!pip install torchsummary  # for summary(model, input_size)",
        "%%time\n# time one epoch\ntrain()",
        "%%bash\n# fetch the data\nwget http://example.com/mnist.tgz",
        "x = (1,\n     # an unclosed bracket still shows its comment\n",
    ],
)
def test_counts_as_commented(source):
    assert commented(source)


@pytest.mark.parametrize(
    "source",
    [
        'print("# a hash inside a string is not a comment")',
        "url = 'https://example.com/#anchor'",
        "notes = '''\n# inside a triple-quoted string\n'''",
        'label = f"{1 + 1}# inside an f-string"',
        'x = "text" + "more"',
        '"prefix".join(parts)',
        "%matplotlib inline",
        "!nvidia-smi",
        "import torch\nimport torch.nn as nn",
        "summary(model, input_size=(1, 28, 28))",
        "s = '''# unterminated triple-quoted string",
        "!echo '#not-a-comment'",
    ],
)
def test_counts_as_uncommented(source):
    assert not commented(source)


def test_magic_only_cell_needs_a_comment_like_any_other():
    report = comment_report([(0, "%matplotlib inline", split_cell("%matplotlib inline"))])
    assert report.uncommented == (0,)


def test_empty_and_blank_cells_need_no_comment():
    cells = [(0, "", split_cell("")), (1, "  \n\n", split_cell("  \n\n")), (2, "x = 1 # c", split_cell("x = 1 # c"))]
    report = comment_report(cells)
    assert report.needing == (2,)
    assert report.uncommented == ()
    assert report.coverage == 1.0


def test_coverage_counts_indices_among_all_cells():
    # Cell positions as Jupyter shows them: markdown cells in between keep their index.
    cells = [(1, "import torch", split_cell("import torch")), (3, "# ok\nx = 1", split_cell("# ok\nx = 1")),
             (4, "train()", split_cell("train()")), (6, "# ok", split_cell("# ok"))]
    report = comment_report(cells)
    assert report.uncommented == (1, 4)
    assert report.coverage == 0.5


def test_notebook_without_code_has_no_coverage():
    assert comment_report([]).coverage is None
