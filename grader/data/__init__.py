"""MNIST on disk: read and write IDX files, find the data folder, download it once.

Other stages need only these: `ensure_mnist()` for the folder (downloading on
first need), `load_mnist(folder, "test")` for validated arrays, and
`stage_torchvision_layout(folder, dest)` to give a notebook the files where
`torchvision.datasets.MNIST(dest)` looks.
"""

from grader.data.fetch import FetchResult, FileCheck, ensure_mnist, fetch_mnist, verify_mnist
from grader.data.idx import MnistSplit, read_images, read_labels, write_idx
from grader.data.locate import cache_dir, data_place, find_mnist, load_mnist, stage_torchvision_layout

__all__ = [
    "FetchResult", "FileCheck", "MnistSplit",
    "cache_dir", "data_place", "ensure_mnist", "fetch_mnist", "find_mnist", "load_mnist",
    "read_images", "read_labels", "stage_torchvision_layout", "verify_mnist", "write_idx",
]
