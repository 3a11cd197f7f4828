"""The job the host hands the runner in the sandbox: built by grader.execute.job, written as job.json into the
output folder, read back by grader.execute.runner with validation (a field unknown, missing or of the wrong type
stops the runner before any cell runs)."""

from __future__ import annotations

from typing import Optional

from pydantic import BaseModel, ConfigDict


class RunJob(BaseModel):
    """One notebook to run: the paths are as the sandbox sees them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    notebook: str  # the prepared v4 notebook
    out_dir: str  # where the harness writes the model, its records and the executed notebook
    workdir: str  # the notebook's folder: the kernel's working directory
    root: str  # the hand-in's root folder (the scratch); on sys.path with the notebook's folder
    variable: str  # the notebook variable that holds the network
    variable_named: bool  # the rubric names `variable`; False: grade the module training updated
    cell_timeout: float
    output_limit: int  # bytes the cells may print in all
    dry_run: bool
    images_file: str  # the 10,000 test images, no labels
    kernel_python: Optional[str]  # the grading environment's interpreter (None: the runner's own)
    compat: tuple[str, ...]  # compat profiles whose shims load before the student's first cell
    keras: bool  # the notebook imports keras: MNIST where Keras looks, fit counted (keras_harness)
    harness_timeout: int = 120  # seconds (nbclient's timeout is whole) for the harness's last cell, which exports
