"""What run_autograder runs on Gradescope: grade the one notebook in <root>/submission, write <root>/results.

    python3 -m grader.gradescope.run --root /autograder

Gradescope's layout (https://gradescope-autograders.readthedocs.io/en/latest/specs/):

    <root>/source/                  the autograder zip, unpacked (here: rubric.yaml, config.json)
    <root>/submission/              the student's files
    <root>/submission_metadata.json when and for which assignment (optional here)
    <root>/results/results.json     what we write: score, tests with output, visibility, leaderboard

Every way a submission can be wrong (no notebook, several, a crash in it) ends in a results.json that
tells the student what happened; only a broken autograder (no rubric) exits non-zero.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Optional

from grader.api import grade_submission, load_rubric, options_for
from grader.errors import GraderError
from grader.intake import pick
from grader.report.gradescope import VISIBILITIES, GradescopeTest, results, sheet_results

SUFFIXES = (".ipynb", ".py")


def _late(metadata: Path) -> Optional[bool]:
    """Late when the submission's created_at is after the assignment's due_date (None: no metadata)."""
    try:
        data = json.loads(metadata.read_text())
        created = datetime.fromisoformat(str(data["created_at"]).replace("Z", "+00:00"))
        due = datetime.fromisoformat(str(data["assignment"]["due_date"]).replace("Z", "+00:00"))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return created > due


def leaderboard(facts) -> list[dict[str, Any]]:
    """Parameters (fewer is better) and measured accuracy (more is better), where measured."""
    entries = []
    if facts.model.params.trainable is not None:
        entries.append({"name": "Parameters", "value": facts.model.params.trainable, "order": "asc"})
    if facts.eval.accuracy is not None:
        entries.append({"name": "Accuracy (%)", "value": round(facts.eval.accuracy, 2), "order": "desc"})
    return entries


def _refusal(message: str, visibility: str) -> dict[str, Any]:
    doc = results([GradescopeTest(name="Submission", score=0, max_score=0, passed=False, output=message)],
                  output=message, stdout_visibility="visible")
    doc["visibility"] = visibility
    return doc


def grade(root: Path) -> dict[str, Any]:
    """The results document for the submission under `root` (raises GraderError only for a broken autograder)."""
    source = root / "source"
    config = json.loads((source / "config.json").read_text()) if (source / "config.json").is_file() else {}
    visibility = config.get("visibility", "visible")
    rubric = load_rubric(source / "rubric.yaml")
    handed_in = root / "submission"
    files = sorted(p for p in handed_in.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES
                   and ".ipynb_checkpoints" not in p.parts)
    choice = pick([(p, p.relative_to(handed_in).as_posix()) for p in files], [], rubric.notebook)
    if choice.empty:
        return _refusal("No notebook found in your submission: upload your .ipynb file (File > Download > "
                        "Download .ipynb in Colab).", visibility)
    if choice.path is None:
        return _refusal(f"Your submission has {choice.what}: upload only the notebook to grade.", visibility)
    started = time.monotonic()
    models = sorted(handed_in.rglob("*.pt2"))  # evaluate mode: the exported model handed in with it
    result = grade_submission(choice.path, rubric, options_for(rubric), student="submission",
                              model_file=models[0] if models else None,
                              late=_late(root / "submission_metadata.json"), root=root / "submission")
    facts, sheet = result.facts, result.sheet
    doc = sheet_results(sheet, facts, execution_time=time.monotonic() - started, stdout_visibility="hidden")
    doc["visibility"] = visibility
    if rubric.leaderboard:
        doc["leaderboard"] = leaderboard(facts)
    return doc


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m grader.gradescope.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=Path("/autograder"),
                        help="Gradescope's folder (default: /autograder; tests give a temporary one)")
    args = parser.parse_args(argv)
    try:
        doc = grade(args.root)
    except GraderError as err:
        print(f"autograder error: {err.render()}", file=sys.stderr)
        return 2
    if doc.get("visibility") not in VISIBILITIES:
        print(f"autograder error: config.json visibility {doc.get('visibility')!r} is not one of "
              f"{', '.join(VISIBILITIES)}; rebuild with `grade gradescope build`", file=sys.stderr)
        return 2
    out = args.root / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(doc["output"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
