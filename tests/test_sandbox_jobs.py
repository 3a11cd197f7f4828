"""The jobs the host hands a sandboxed process are typed records: what the host writes is what the inside reads,
and a job that is not one (a field unknown, missing or of the wrong type) is refused before anything runs."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from grader.evaluate.eval_jobs import EvalJob, KerasJob, WarmJob
from grader.execute.run_job import RunJob

RUN = RunJob(notebook="/w/submission.ipynb", out_dir="/w/.grader", workdir="/w", root="/w", variable="model",
             variable_named=False, cell_timeout=600.0, output_limit=8 << 20, dry_run=False,
             images_file="/data/test_images.npy", kernel_python=None, compat=("colab",), keras=False)
EVAL = EvalJob(model_file="/e/model.pt2", images_file="/e/test_images.npy", out_dir="/e", scale=3.2, shift=-0.4)


@pytest.mark.parametrize("job", [RUN, EVAL, WarmJob(measure=EVAL, cpus=2, file_bytes=1 << 30, cpu_seconds=1210),
                                 KerasJob(model_file="/e/model.keras", images_file="/e/i.npy", out_dir="/e",
                                          layout="nhwc", scale=1.0, shift=0.0, predict=True)])
def test_what_the_host_writes_is_what_the_inside_reads(job):
    assert type(job).model_validate_json(job.model_dump_json()) == job


@pytest.mark.parametrize("kind, text, says", [
    (RunJob, RUN.model_dump_json().replace('"keras":false', '"keras":false,"shell":"rm -rf /"'), "shell"),
    (RunJob, RUN.model_dump_json().replace('"cell_timeout":600.0', '"cell_timeout":"long"'), "cell_timeout"),
    (EvalJob, '{"images_file": "/e/i.npy", "out_dir": "/e"}', "model_file"),
    (KerasJob, EVAL.model_dump_json(), "layout"),
    (WarmJob, '{"cpus": 1, "file_bytes": 1, "cpu_seconds": 1}', "either measures a model or runs a script"),
])
def test_a_job_that_is_not_one_is_refused_naming_the_field(kind, text, says):
    with pytest.raises(ValidationError, match=says):
        kind.model_validate_json(text)
