"""The architecture as tests: the import contracts hold (and catch a bad import), scoring loads no stage,
and the public API grades a class with no command-line code loaded."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# import-linter's command, run through this interpreter: found with or without the venv activated (./test.sh
# runs .venv/bin/python without putting .venv/bin on PATH).
LINT = [sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command; "
        "sys.exit(lint_imports_command())"]


def _lint(cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*LINT, "--no-cache"], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_import_contracts_hold():
    done = _lint(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


def test_a_bad_import_breaks_a_contract(tmp_path: Path):
    shutil.copytree(ROOT / "grader", tmp_path / "grader", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    (tmp_path / "grader" / "rubric" / "_probe.py").write_text("import grader.execute.job\n")
    done = _lint(tmp_path)
    assert done.returncode == 1
    assert "rubric never imports a front end, the sandbox or the" in done.stdout
    assert "grader.rubric._probe -> grader.execute.job" in done.stdout


def _python(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_scoring_imports_no_front_end_sandbox_or_execute_stage():
    out = _python("import sys, json, grader.rubric.score\n"
                  "print(json.dumps(sorted(m for m in sys.modules if m.startswith('grader.'))))")
    loaded = json.loads(out)
    assert "grader.rubric.score" in loaded
    assert not [m for m in loaded if m.startswith(("grader.cli", "grader.sandbox", "grader.execute"))], loaded


def test_the_public_api_grades_the_example_class_without_the_cli(tmp_path: Path, real_mnist_dir: Path):
    script = f"""
import json, sys
from pathlib import Path
from grader.api import grade_class, load_rubric, options_for, write_outputs

rubric = load_rubric("mnist-s3")
options = options_for(rubric, mode="evaluate", data={str(real_mnist_dir)!r})
results = list(grade_class(Path("examples/submissions"), rubric, options, out=Path({str(tmp_path)!r}), jobs=2))
gradebook = write_outputs(results, Path({str(tmp_path)!r}))
print(json.dumps({{
    "scores": {{r.student: r.sheet.score for r in results}},
    "verdicts": {{r.student: r.facts.verdict.kind for r in results}},
    "passed": sorted(r.student for r in results if r.sheet.passed),
    "gradebook": str(gradebook),
    "cli": [m for m in sys.modules if m.startswith("grader.cli")],
}}))
"""
    out = json.loads(_python(script).strip().splitlines()[-1])
    assert out["cli"] == []  # (argparse itself may load: libraries such as torch import it)
    assert set(out["verdicts"].values()) == {"ok"}
    # evaluate mode: the `runs` item (5 points) is not judged, so the one student who meets the assignment has 95
    assert out["scores"]["1001"] == 95 and out["scores"]["1002"] < 95 and out["scores"]["1004"] < 95
    assert out["passed"] == ["1001"]
    assert Path(out["gradebook"]).read_text().splitlines()[0].startswith("student,score,max_score,passed,verdict")
    for student in out["scores"]:
        assert (tmp_path / student / "report.html").is_file() and (tmp_path / student / "facts.json").is_file()
