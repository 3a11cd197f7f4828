#!/bin/bash
# Behaviour check for a refactor: grade the bundled class (evaluate mode, as setup.sh does, and static), and take the
# static facts of every fixture notebook and hand-in folder. Only what differs between two runs of the same code is
# made comparable (the run's seconds, zip timestamps, the checkout's path in grading.json).
# usage: scripts/compare-outputs.sh CHECKOUT OUT, once per checkout (before, after), then: diff -r OUT1 OUT2
# (the in-between folder /tmp/compare-outputs-in is shared: run one at a time)
set -euo pipefail
src=$(cd "$1" && pwd); mkdir -p "$2"; out=$(cd "$2" && pwd)
in=/tmp/compare-outputs-in; rm -rf "$out" "$in"; mkdir -p "$out/fixtures"
cd "$src"
python -m grader examples/submissions --rubric mnist-s3 --mode evaluate --out "$out/class-evaluate" >/dev/null 2>&1
python -m grader examples/submissions --rubric mnist-s3 --mode static --out "$out/class-static" >/dev/null 2>&1
# fixtures: each notebook or modular hand-in folder in a class folder of its own, static mode
for f in tests/fixtures/notebooks/*.ipynb tests/fixtures/modular/*/ examples/source/*.ipynb; do
  name=$(echo "$f" | tr '/' '_' | sed 's/_$//')
  mkdir -p "$in/$name"; cp -r "$f" "$in/$name/"
done
find "$in" -name __pycache__ -prune -exec rm -rf {} +  # the tests' byte-code is not a hand-in
python -m grader "$in" --rubric mnist-s3 --mode static --out "$out/fixtures" >/dev/null 2>&1 || true
rm -rf "$in"
# what may differ between two runs of the same code: the run's seconds (results.json), the zip's timestamps
python - "$out" "$src" <<'PY'
import json, pathlib, sys, zipfile
for p in pathlib.Path(sys.argv[1]).rglob("results.json"):
    data = json.loads(p.read_text()); data.pop("execution_time", None)
    p.with_name("results.timeless.json").write_text(json.dumps(data, indent=1, sort_keys=True)); p.unlink()
for p in pathlib.Path(sys.argv[1]).rglob("grading.json"):  # names the rubric file of the checkout it ran from
    p.write_text(p.read_text().replace(sys.argv[2], "CHECKOUT"))
for p in pathlib.Path(sys.argv[1]).rglob("*.zip"):
    with zipfile.ZipFile(p) as z:
        for n in z.namelist():
            t = p.with_suffix(".unzipped") / n; t.parent.mkdir(parents=True, exist_ok=True); t.write_bytes(z.read(n))
    p.unlink()
PY
find "$out" -name .cache -prune -exec rm -rf {} +
