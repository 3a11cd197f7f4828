"""Course repositories whose notebook imports its own `.py` files (issue 21), graded three ways through the public API.

The six fixtures in tests/fixtures/modular/ (make_fixtures.py says what each one does) are handed in as a class
three times under the shipped mnist-s5 rubric, one class run per way:

- folder: each repository is a student's folder in a Moodle export (`Name_2101_assignsubmission_file_/`);
- zip: each student's folder holds `repo.zip`, as GitHub's "Download ZIP" makes it (everything under `era-s5-main/`);
- link: each student's Moodle online text is a GitHub link, served by a real git server on 127.0.0.1.

Each case must give, every way: the verdict ok, the parameter count of the model its model.py builds (counted here,
by importing that file), the printed count matched (claims.params_gap 0) or the mismatch flagged, the compat shims
its Colab or PyTorch-2.0 code went through, which model was graded when there were several, and the staged files
with their hashes; the three ways give the same facts.
"""

from __future__ import annotations

import hashlib
import importlib.util
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pytest

from grader.api import Result, grade_class, load_rubric, options_for, prepare_test_data, write_outputs
from grader.errors import GraderError
from tests.gitserver import git, github_at, publish, serving
from tests.static_rubrics import CELLS

FIXTURES = Path(__file__).parent / "fixtures" / "modular"
CASES = ("plain", "helper", "colab", "verbose", "several", "printed_mismatch")
STUDENTS = {case: (f"{case.replace('_', ' ').title().replace(' ', '')} Student", str(2101 + i))
            for i, case in enumerate(CASES)}
WAYS = ("folder", "zip", "link")
PRINTED = 7_210  # what every notebook printed (printed_mismatch: the count of its model.py before BN was removed)


def moodle_folder(case: str, plugin: str = "file") -> str:
    name, number = STUDENTS[case]
    return f"{name}_{number}_assignsubmission_{plugin}_"


def measured_here(case: str) -> int:
    """The parameters of the model the case's model.py builds (the LN variant in `several`: trained last)."""
    spec = importlib.util.spec_from_file_location(f"modular_fixture_{case}", FIXTURES / case / "model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    net = module.Net("ln") if case == "several" else module.Net()
    return sum(p.numel() for p in net.parameters())


def repository_files(case: str) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((FIXTURES / case).iterdir()) if p.is_file()}


def copy_repository(case: str, dest: Path) -> None:
    shutil.copytree(FIXTURES / case, dest, ignore=shutil.ignore_patterns("__pycache__"))  # measured_here's imports


def folder_class(root: Path) -> Path:
    for case in CASES:
        copy_repository(case, root / moodle_folder(case))
    return root


def zip_class(root: Path) -> Path:
    for case in CASES:
        folder = root / moodle_folder(case)
        folder.mkdir(parents=True)
        with zipfile.ZipFile(folder / "repo.zip", "w", zipfile.ZIP_DEFLATED) as zf:
            for name, content in repository_files(case).items():
                zf.writestr(zipfile.ZipInfo(f"era-s5-main/{name}", (2026, 11, 30, 10, 0, 0)), content)
    return root


def link_class(root: Path, served: Path) -> Path:
    """Each case a repository github.com/<case>/era-s5 (one commit), each student's online text its link."""
    for case in CASES:
        work = root / "work" / case
        copy_repository(case, work)
        git("init", "-q", "-b", "main", cwd=work)
        git("add", "-A", cwd=work)
        git("commit", "-q", "-m", "session 5", cwd=work)
        publish(work, served, f"{case.replace('_', '-')}/era-s5")
        folder = root / "class" / moodle_folder(case, "onlinetext")
        folder.mkdir(parents=True)
        url = f"https://github.com/{case.replace('_', '-')}/era-s5"
        (folder / "onlinetext.html").write_text(f'<p>My repo: <a href="{url}">{url}</a></p>')
    return root / "class"


@dataclass(frozen=True)
class Graded:
    results: dict[str, dict[str, Result]]  # {way: {case: Result}}
    refused: dict[str, str]  # {way: the GraderError its class run raised}: that way's tests fail with it
    out: Path  # out/<way>/ holds each way's reports

    def facts(self, way: str, case: str):
        if way in self.refused:
            pytest.fail(f"the class handed in as {way}s was refused: {self.refused[way]}", pytrace=False)
        if case not in self.results[way]:
            pytest.fail(f"the class handed in as {way}s has no result for {moodle_folder(case)}", pytrace=False)
        return self.results[way][case].facts

    def report(self, way: str, case: str) -> str:
        return (self.out / way / STUDENTS[case][1] / "report.md").read_text()


@pytest.fixture(scope="module")
def graded(tmp_path_factory, bwrap, real_mnist_dir) -> Graded:
    """The six cases graded as one class per way under mnist-s5, with their reports written."""
    root = tmp_path_factory.mktemp("modular")
    rubric = load_rubric("mnist-s5")
    options = options_for(rubric, data=str(real_mnist_dir))
    data = prepare_test_data(str(real_mnist_dir))
    served = root / "served"
    served.mkdir()
    classes = {"folder": folder_class(root / "folder"), "zip": zip_class(root / "zip"),
               "link": link_class(root / "link", served)}
    by_id = {number: case for case, (_, number) in STUDENTS.items()}
    results: dict[str, dict[str, Result]] = {}
    refused: dict[str, str] = {}
    with serving(served) as base, pytest.MonkeyPatch.context() as mp:
        github_at(base, mp)
        for way, source in classes.items():  # one way refused never hides what the others give
            out = root / "out" / way
            try:
                got = list(grade_class(source, rubric, options, out=out, data=data))
            except GraderError as err:
                refused[way] = err.render()
                continue
            write_outputs(got, out, data=data)
            results[way] = {by_id[r.student]: r for r in got}
    return Graded(results, refused, root / "out")


@pytest.mark.parametrize("way", WAYS)
@pytest.mark.parametrize("case", CASES)
def test_each_case_runs_and_its_model_py_is_measured(graded, case, way):
    facts = graded.facts(way, case)
    assert facts.verdict.kind == "ok", facts.verdict.message
    assert facts.verdict.failed_cells == []
    assert facts.model.params.total == measured_here(case)


@pytest.mark.parametrize("way", WAYS)
@pytest.mark.parametrize("case", CASES)
def test_the_printed_parameter_count_is_matched_or_the_mismatch_flagged(graded, case, way):
    facts = graded.facts(way, case)
    assert facts.claims.params == PRINTED
    if case == "printed_mismatch":
        assert facts.model.params.total == 7_070  # the committed model.py has no batch norm
        assert facts.claims.params_gap == PRINTED - 7_070
        report = graded.report(way, case)
        assert "7,210" in report and "7,070" in report  # the printed and the measured count, side by side
    else:
        assert facts.claims.params_gap == 0


@pytest.mark.parametrize("way", WAYS)
def test_colab_and_removed_pytorch_arguments_run_through_their_shims(graded, way):
    colab = graded.facts(way, "colab").train.compat_shims
    assert {"colab: drive.mount", "colab: files.upload", "colab: %cd /content/..."} <= set(colab), colab
    verbose = graded.facts(way, "verbose").train.compat_shims
    assert "torch-2.x: StepLR(verbose=)" in verbose, verbose
    for case in ("plain", "helper", "several", "printed_mismatch"):  # nothing to shim in these
        assert not graded.facts(way, case).train.compat_shims


@pytest.mark.parametrize("way", WAYS)
def test_several_models_the_last_trained_is_graded_with_a_note(graded, way):
    facts = graded.facts(way, "several")
    assert facts.train.trained_models == ["ln_model", "gn_model", "bn_model"]  # the most recent first
    assert facts.train.model_variable == "ln_model"
    assert facts.model.layers.batchnorm == 0  # the layer-norm variant, not the batch-norm one trained first
    assert "trained several models (`ln_model`, `gn_model`, `bn_model`): graded `ln_model`" in facts.verdict.message


@pytest.mark.parametrize("way", WAYS)
def test_a_model_trained_inside_a_helper_function_is_captured(graded, way):
    facts = graded.facts(way, "helper")
    assert facts.train.optimizer_steps == 40  # 640 images in batches of 16, one epoch
    # no global ever held it: the facts name the helper it was trained in, with its arguments
    assert facts.train.model_variable == "the Net trained inside `run_experiment(epochs=1, lr=0.05)`"
    assert facts.train.model_reason and "optimizer step" in facts.train.model_reason
    assert facts.model.layers.batchnorm == 5 and facts.model.transitions == 1


@pytest.mark.parametrize("way", WAYS)
@pytest.mark.parametrize("case", CASES)
def test_the_staged_files_are_listed_with_their_hashes(graded, case, way):
    files = graded.facts(way, case).submission.files
    assert files, "the facts list no staged files"
    assert PurePosixPath(files[0].path).name == "S5.ipynb"  # the notebook first
    staged = {PurePosixPath(f.path).name: f for f in files}
    for name in ("model.py", "utils.py"):
        content = (FIXTURES / case / name).read_bytes()
        assert staged[name].sha256 == hashlib.sha256(content).hexdigest()
        assert staged[name].bytes == len(content)


@pytest.mark.parametrize("case", CASES)
def test_the_three_ways_give_the_same_facts(graded, case):
    def gist(way: str) -> tuple:
        facts = graded.facts(way, case)
        return (facts.verdict.kind, facts.model.params.total, facts.claims.params, facts.claims.params_gap,
                facts.train.compat_shims, facts.train.model_variable, facts.train.trained_models,
                facts.model.layers, facts.model.transitions, facts.model.gap,
                sorted((PurePosixPath(f.path).name, f.sha256) for f in facts.submission.files or []))

    folder, zipped, linked = (gist(way) for way in WAYS)
    assert folder == zipped == linked


def test_a_change_to_model_py_is_a_new_submission_for_the_cache(tmp_path):
    """Static mode (nothing runs): the cache key is the hand-in's, whatever the mode."""
    rubric_file = tmp_path / "cells.yaml"
    rubric_file.write_text(CELLS)
    rubric = load_rubric(rubric_file)
    source = folder_class(tmp_path / "class")
    out = tmp_path / "out"

    def cached() -> dict[str, bool]:
        return {r.student: r.cached for r in grade_class(source, rubric, options_for(rubric), out=out)}

    numbers = [number for _, number in STUDENTS.values()]
    assert cached() == dict.fromkeys(numbers, False)
    assert cached() == dict.fromkeys(numbers, True)
    model_py = source / moodle_folder("plain") / "model.py"
    model_py.write_text(model_py.read_text().replace("nn.Dropout(dropout)", "nn.Dropout(0.1)"))
    assert cached() == {number: number != STUDENTS["plain"][1] for number in numbers}


def test_in_a_dry_run_the_model_graded_is_the_one_an_optimizer_holds(tmp_path, bwrap, real_mnist_dir):
    """Of the three models `several` builds, a dry run grades the one the notebook's last optimizer holds
    (`ln_model`), as the full run would, not `no_model`."""
    rubric = load_rubric("mnist-s5")
    source = tmp_path / "class"
    copy_repository("several", source / moodle_folder("several"))
    (result,) = grade_class(source, rubric, options_for(rubric, data=str(real_mnist_dir), dry_run=True),
                            out=tmp_path / "out")
    facts = result.facts
    assert facts.grading.dry_run and facts.verdict.kind == "ok", facts.verdict.message
    assert facts.train.model_variable == "ln_model"
    assert facts.model.params.total == measured_here("several")
