"""Every reference notebook through the full `grade check` against its own rubric.

    python bench/check_references.py                     # s3, s4, s5: 15 epochs each in the sandbox
    python bench/check_references.py s5 --data DIR
    python bench/check_references.py --save-outputs      # also write each executed notebook back, with its outputs

This is the command an instructor runs, `grade check reference_models/<name>.ipynb
--rubric rubrics/<rubric>.yaml`, once per reference, one after the other (each
trains for its whole epoch budget: minutes on a GPU, 15-25 minutes on a 2-core
CPU). Per notebook it prints the score, the accuracy the grader measured and the
one the notebook printed, the epochs the harness counted, the wall time and the
device; the exit code is 0 only when every notebook passes every required item.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from reference_models.nets import REFERENCES  # noqa: E402

CHECKED = [name for name, ref in REFERENCES.items() if ref.rubric]


def check(name: str, data: str | None, keep: Path) -> dict:
    ref = REFERENCES[name]
    command = [sys.executable, "-m", "grader", "check", str(ROOT / "reference_models" / f"{name}.ipynb"),
               "--rubric", str(ROOT / "rubrics" / f"{ref.rubric}.yaml"), "--json", "--keep", str(keep)]
    if data:
        command += ["--data", data]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    seconds = time.perf_counter() - started
    if not done.stdout.strip():
        raise SystemExit(f"{name}: grade check printed nothing (exit {done.returncode}):\n{done.stderr[-2000:]}")
    out = json.loads(done.stdout)
    facts, sheet = out["facts"], out["score"]
    failed = [i["id"] for i in sheet["items"] if i["required"] and i["status"] in ("failed", "partial")]
    return {"name": name, "rubric": ref.rubric, "exit": done.returncode, "score": sheet["score"],
            "max": sheet["max_score"], "measured": facts["eval"]["accuracy"], "printed": facts["claims"]["accuracy"],
            "epochs": facts["train"]["epochs"], "device": facts["train"]["device"],
            "verdict": facts["verdict"]["kind"], "failed": failed, "seconds": seconds,
            "not_full": [i["id"] for i in sheet["items"] if i["status"] != "passed"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", default=CHECKED, help=f"references to check (default: {' '.join(CHECKED)})")
    parser.add_argument("--data", help="MNIST folder (default: where `grade data` finds it)")
    parser.add_argument("--save-outputs", action="store_true",
                        help="write each executed notebook over reference_models/<name>.ipynb (outputs included)")
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in CHECKED]
    if unknown:
        parser.error(f"no rubric to check {', '.join(unknown)} against; choose from {', '.join(CHECKED)}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.names:
            print(f"{name}: grade check against {REFERENCES[name].rubric} ({time.strftime('%H:%M:%S')}) "
                  "...", flush=True)
            row = check(name, args.data, Path(tmp) / name)
            rows.append(row)
            print(f"{name}: {row['score']:g}/{row['max']:g}, measured {row['measured']}%, printed {row['printed']}%, "
                  f"{row['epochs']} epochs on {row['device']}, {row['seconds'] / 60:.1f} min, exit {row['exit']}"
                  + (f", required items failed: {', '.join(row['failed'])}" if row["failed"] else ""), flush=True)
            if args.save_outputs and row["exit"] == 0:  # only a notebook that passes is worth keeping
                shutil.copyfile(Path(tmp) / name / "executed.ipynb", ROOT / "reference_models" / f"{name}.ipynb")
    print("\n| notebook | rubric | score | measured | printed | epochs | device | minutes | not passed |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['name']}.ipynb | {r['rubric']} | {r['score']:g}/{r['max']:g} | {r['measured']} | {r['printed']} "
              f"| {r['epochs']} | {r['device']} | {r['seconds'] / 60:.1f} | {', '.join(r['not_full']) or '-'} |")
    return 0 if all(r["exit"] == 0 for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
