"""IPython lines, imports, Colab calls and MNIST roots, read without running anything."""

from __future__ import annotations

from grader.inspect.source import source_facts, split_cell


def facts(*cells: str):
    return source_facts([split_cell(cell) for cell in cells])


class TestSplitCell:
    def test_shell_and_magic_lines_become_pass_so_the_rest_parses(self):
        cell = split_cell("!pip install torchsummary\n%matplotlib inline\nimport torch")
        assert cell.shell == ("!pip install torchsummary",)
        assert cell.magic == ("%matplotlib inline",)
        assert cell.python == "pass\npass\nimport torch"

    def test_shell_line_with_backslash_continuation_is_one_line(self):
        cell = split_cell("!pip install torch \\\n    torchvision\nx = 1")
        assert cell.shell == ("!pip install torch torchvision",)
        assert cell.python == "pass\n\nx = 1"

    def test_assigned_shell_and_magic(self):
        cell = split_cell("files = !ls ../data\nt = %timeit -o train()")
        assert cell.shell == ("files = !ls ../data",)
        assert cell.magic == ("t = %timeit -o train()",)

    def test_indented_shell_line_keeps_the_block_valid(self):
        cell = split_cell("if True:\n    !nvidia-smi")
        assert cell.python == "if True:\n    pass"

    def test_modulo_and_comparison_are_python(self):
        cell = split_cell("x = a % b\ny = a != b")
        assert (cell.shell, cell.magic) == ((), ())

    def test_python_cell_magic_keeps_its_body(self):
        cell = split_cell("%%time\nimport torch\ntrain()")
        assert cell.magic == ("%%time",)
        assert cell.python == "pass\nimport torch\ntrain()"

    def test_bash_cell_body_is_shell(self):
        cell = split_cell("%%bash\n# fetch the data\nwget http://example.com/mnist.tgz\ntar xzf mnist.tgz")
        assert cell.python == ""
        assert cell.shell == ("wget http://example.com/mnist.tgz", "tar xzf mnist.tgz")
        assert cell.ipython_comments == ("# fetch the data",)

    def test_writefile_of_a_python_module_is_python(self):
        assert split_cell("%%writefile model.py\nimport torch").python == "pass\nimport torch"
        assert split_cell("%%writefile notes.txt\nimport torch").python == ""

    def test_shell_comment_outside_quotes_only(self):
        assert split_cell("!pip install torchinfo  # layer table").ipython_comments == ("# layer table",)
        assert split_cell("!echo 'a # b' issue#3").ipython_comments == ()


class TestImports:
    def test_top_level_names_sorted_and_unique(self):
        found = facts("import torch\nimport torch.nn as nn",
                      "from torchvision import datasets, transforms\nimport numpy as np, os")
        assert found.imports == ("numpy", "os", "torch", "torchvision")

    def test_imports_inside_functions_and_after_magics(self):
        assert facts("%matplotlib inline\ndef plot():\n    import matplotlib.pyplot as plt").imports == ("matplotlib",)

    def test_relative_imports_are_the_students_own_files(self):
        assert facts("from . import utils\nfrom .model import Net").imports == ()

    def test_regex_fallback_for_a_cell_that_does_not_parse(self):
        found = facts("import torch.nn as nn, numpy\nfrom tqdm import tqdm\nmodel?\nx = (")
        assert found.imports == ("numpy", "torch", "tqdm")

    def test_shell_and_magic_lines_in_notebook_order(self):
        found = facts("!pip install torchsummary", "%matplotlib inline\n!nvidia-smi")
        assert found.shell_lines == ("!pip install torchsummary", "!nvidia-smi")
        assert found.magic_lines == ("%matplotlib inline",)


class TestColab:
    def test_imports_and_calls_on_what_they_bound(self):
        found = facts(
            "from google.colab import drive\ndrive.mount('/content/drive')",
            "from google.colab import files as f\nuploaded = f.upload()\nfiles = []\nfiles.append(1)",
        )
        assert found.colab_calls == (
            "from google.colab import drive",
            "drive.mount('/content/drive')",
            "from google.colab import files as f",
            "f.upload()",
        )

    def test_module_import_and_patches(self):
        found = facts("import google.colab\nfrom google.colab.patches import cv2_imshow\ncv2_imshow(img)")
        assert found.colab_calls == ("import google.colab", "from google.colab.patches import cv2_imshow",
                                     "cv2_imshow(img)")

    def test_fallback_for_a_cell_that_does_not_parse(self):
        assert facts("from google.colab import drive\ndrive.mount('/content/drive'\n").colab_calls == (
            "from google.colab import drive",
            "drive.mount('/content/drive'",
        )


class TestMnistRoots:
    def test_positional_and_keyword_roots(self):
        found = facts(
            "train = datasets.MNIST('../data', train=True, download=True,\n"
            "    transform=transforms.Compose([transforms.ToTensor()]))\n"
            "test = torchvision.datasets.MNIST(root='./mnist', train=False)\n"
            "again = MNIST('../data', train=False)"
        )
        assert found.mnist_roots == ("../data", "./mnist")

    def test_root_held_in_a_top_level_string_constant(self):
        assert facts("DATA = '/content/drive/MyDrive/mnist'", "ds = datasets.MNIST(DATA, train=True)").mnist_roots == (
            "/content/drive/MyDrive/mnist",
        )

    def test_name_with_two_values_or_a_computed_root_is_not_literal(self):
        found = facts("D = 'a'\nD = 'b'\nds = datasets.MNIST(D)", "ds = datasets.MNIST(os.path.join('x', 'y'))")
        assert found.mnist_roots == ()

    def test_other_datasets_are_not_mnist(self):
        assert facts("ds = datasets.FashionMNIST('../fashion')\nds = datasets.EMNIST('../e', "
                     "split='digits')").mnist_roots == ()

    def test_fallback_for_a_cell_that_does_not_parse(self):
        found = facts("!wget x\nds = datasets.MNIST(root='data', train=True\nmodel?")
        assert found.mnist_roots == ("data",)
