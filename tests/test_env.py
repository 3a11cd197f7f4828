"""Grading environments (issue 14): the rubric's `environment:`, its content hash, `grade env build`, the cache,
and what `pip install` in a notebook does. Builds go into a temporary cache; the one real install test uses pip's
cache of the wheels `./setup.sh` downloaded for the default environment."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from grader import yamlio
from grader.api import options_for
from grader.cli.main import main
from grader.env.build import MARKER, build, locate, plan
from grader.env.spec import DEFAULT_PACKAGES, EnvironmentSpec, canonical_name, requirements_of
from grader.errors import GraderError
from grader.execute import kernel_pip
from grader.rubric.load import load_rubric, rubric_from_yaml

RUBRIC = """\
id: env-test
title: environment test
environment:
{env}
items:
  - id: params
    title: parameters
    fact: model.params.trainable
    le: 20000
    points: 1
"""


def _rubric(env: str):
    return rubric_from_yaml(yamlio.loads(RUBRIC.format(env=env), "r.yaml"))


# --- the rubric key ---------------------------------------------------------------------------------------------

def test_an_unknown_compat_profile_names_the_line_and_the_profiles_there_are():
    with pytest.raises(GraderError) as err:
        _rubric("  compat: [torch-1.x, keras-3]")
    text = err.value.render()
    assert "r.yaml:4" in text and "'keras-3' is not a compat profile" in text
    assert "torch-1.x, keras-1, keras-2" in text


def test_a_malformed_requirement_names_the_line_and_shows_the_form():
    with pytest.raises(GraderError) as err:
        _rubric("  packages: [pandas, 'keras >> 3']")
    text = err.value.render()
    assert "r.yaml:4" in text and "'keras >> 3' is not a package requirement" in text and "keras>=3" in text


def test_a_misspelt_key_under_environment_says_which_keys_there_are():
    with pytest.raises(GraderError) as err:
        _rubric("  pakages: [pandas]")
    text = err.value.render()
    assert "r.yaml:4" in text and "packages" in text and "requirements" in text and "compat" in text


def test_the_rubrics_packages_join_the_defaults_and_a_pin_replaces_the_default():
    reqs = requirements_of(EnvironmentSpec(packages=["keras>=3", "Pandas==2.2.3"]))
    names = [canonical_name(r) for r in reqs]
    assert "keras>=3" in reqs and "Pandas==2.2.3" in reqs and "pandas" not in reqs
    assert set(names) == {canonical_name(p) for p in DEFAULT_PACKAGES} | {"keras"}


def test_a_requirements_file_is_read_beside_the_rubric(tmp_path):
    (tmp_path / "requirements.txt").write_text("# the course's extras\nkeras>=3  # EIP sessions\n\n")
    assert "keras>=3" in requirements_of(EnvironmentSpec(requirements="requirements.txt"), tmp_path)


def test_a_missing_requirements_file_says_where_it_looked(tmp_path):
    with pytest.raises(GraderError) as err:
        requirements_of(EnvironmentSpec(requirements="reqs.txt"), tmp_path)
    assert str(tmp_path / "reqs.txt") in err.value.render() and "relative to the rubric" in err.value.render()


def test_an_unsupported_line_in_a_requirements_file_names_file_and_line(tmp_path):
    (tmp_path / "requirements.txt").write_text("pandas\n--index-url https://example.org/simple\n")
    with pytest.raises(GraderError) as err:
        requirements_of(EnvironmentSpec(requirements="requirements.txt"), tmp_path)
    assert f"{tmp_path / 'requirements.txt'}:2" in err.value.render()


def test_the_cache_key_is_the_content_requirements_not_the_compat_profiles(tmp_path):
    base = plan(EnvironmentSpec(), root=tmp_path)
    assert plan(EnvironmentSpec(compat=["torch-1.x"]), root=tmp_path).key == base.key
    assert plan(EnvironmentSpec(packages=["keras>=3"]), root=tmp_path).key != base.key
    # the same packages written in another order or another spelling of a default are the same environment
    assert plan(EnvironmentSpec(packages=["seaborn", "pandas"]), root=tmp_path).key == base.key


# --- building and finding it ------------------------------------------------------------------------------------

def test_grading_needs_a_built_environment_and_says_how_to_build_it(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADER_ENVS", str(tmp_path))
    rubric = load_rubric("mnist-s3")
    with pytest.raises(GraderError) as err:
        options_for(rubric)
    assert "is not built yet" in err.value.render() and "grade env build" in err.value.render()
    # a static check and an evaluation run no notebook: they need no environment
    assert options_for(rubric, mode="static").environment is None
    assert options_for(rubric, mode="evaluate").environment is None


def test_env_path_exits_1_with_the_fix_when_not_built(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GRADER_ENVS", str(tmp_path))
    assert main(["env", "path", "mnist-s3"]) == 1
    err = capsys.readouterr().err
    assert "not built yet" in err and "grade env build mnist-s3" in err


def test_build_installs_what_the_grader_lacks_reuses_the_rest_and_is_cached(tmp_path):
    spec = EnvironmentSpec(compat=["torch-1.x"])
    env = build(spec, root=tmp_path)
    assert env.built and (env.path / MARKER).is_file() and env.build_seconds is not None
    assert set(env.packages) == {canonical_name(p) for p in DEFAULT_PACKAGES}
    recorded = json.loads((env.path / MARKER).read_text())
    assert "torch" not in recorded["installed"]  # torch comes from the grader's interpreter: one copy
    # the venv's Python imports the environment's packages and the grader's torch
    done = subprocess.run([str(env.python), "-c", "import pandas, sklearn, skimage, seaborn, torch, ipykernel; "
                                                  "print(pandas.__version__)"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == env.packages["pandas"]
    again = build(spec, root=tmp_path)
    assert again.path == env.path and again.build_seconds == env.build_seconds  # cached: not built again
    assert locate(spec, root=tmp_path).python == env.python
    assert not list(tmp_path.glob("*.partial-*"))


def test_a_package_that_does_not_exist_fails_the_build_naming_it_and_the_rubric_key(tmp_path):
    spec = EnvironmentSpec(packages=["no-such-package-for-grader-tests==0.0.1"])
    with pytest.raises(GraderError) as err:
        build(spec, root=tmp_path)
    text = err.value.render()
    assert "no-such-package-for-grader-tests" in text and "environment: packages:" in text
    assert not plan(spec, root=tmp_path).built and not list(tmp_path.glob("*.partial-*"))


def test_grade_env_build_json_reports_the_cached_default_environment(capsys):
    assert main(["env", "build", "--json"]) == 0  # ./setup.sh built it
    out = json.loads(capsys.readouterr().out)
    assert out["cached"] is True and Path(out["path"]).is_dir() and "pandas" in out["packages"]


# --- pip install in a notebook ----------------------------------------------------------------------------------

@pytest.mark.parametrize("line, wanted", [
    ("pip install torch torchvision", ["torch", "torchvision"]),
    ("pip3 install -q -U torchsummary", ["torchsummary"]),
    ("python -m pip install 'keras>=3' --upgrade", ["keras>=3"]),
    ("/usr/bin/python3.11 -m pip install -r requirements.txt pandas", ["pandas"]),
    ("pip install torchviz && echo done", ["torchviz"]),
    ("ls -l", None),
    ("pip list", None),
])
def test_pip_install_lines_are_recognised(line, wanted):
    assert kernel_pip.requested(line) == wanted


def test_pip_install_of_a_package_the_environment_has_is_a_no_op_and_a_missing_one_names_the_rubric_key():
    text = kernel_pip.answer(["torch", "no-such-package-for-grader-tests"])
    have, lack = text.splitlines()
    assert "torch is already in this assignment's grading environment" in have and "was skipped" in have
    assert "no-such-package-for-grader-tests is not in this assignment's grading environment" in lack
    assert "`environment: packages:`" in lack and "grade env build" in lack


def test_two_builds_of_one_environment_at_once_build_it_once(tmp_path):
    spec = EnvironmentSpec(packages=["keras>=3"])
    code = ("import sys; from pathlib import Path; from grader.env.build import build; from grader.env.spec import "
            "EnvironmentSpec; e = build(EnvironmentSpec(packages=['keras>=3']), root=Path(sys.argv[1])); "
            "print(e.build_seconds)")
    runs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True)
            for _ in range(2)]
    outs = [run.communicate(timeout=600)[0].strip() for run in runs]
    assert all(run.returncode == 0 for run in runs)
    assert outs[0] == outs[1]  # the second waited and found the first's build (same recorded build time)
    assert plan(spec, root=tmp_path).built and not list(tmp_path.glob("*.partial-*"))
