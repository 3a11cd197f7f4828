"""Static inspection: what a submission holds, read without running it.

notebook  load and parse a submission (.ipynb of any nbformat version, or .py)
source    IPython lines, imports, Colab calls, MNIST roots
comments  which code cells carry a comment
claims    what the saved outputs claim (parameters, test accuracy, epochs)
static    all of the above as NotebookFacts + ClaimsFacts
"""

from grader.inspect.notebook import DEFAULT_MAX_BYTES
from grader.inspect.static import StaticReport, inspect_submission

__all__ = ["DEFAULT_MAX_BYTES", "StaticReport", "inspect_submission"]
