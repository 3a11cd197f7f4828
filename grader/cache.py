"""The facts cache that makes class grading resumable.

The facts of a submission are cached under the hash of its content and of the
settings that decide what a run measures (mode, limits, the model variable and
whether the rubric named it, the sandbox, grader version, facts schema; `NOT_FACTS`
says what the key leaves out, and why). Scoring is pure and cheap, so a changed
rubric re-scores every cached submission without running anything again; a changed
file runs only that file. Facts of a submission the grader failed on (`grader_failed`:
the machine, not the file) are never kept, so the next run grades it again.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Optional

from grader import __version__
from grader.facts import Facts
from grader.intake import Submission
from grader.settings import Options

# Bumped when what a cached record holds changes. 3: model.stored, model.ops, eval.unseen_*; 4: train.epochs_checked
# and its cross-check, model.stored.bn_batches; 5: hand-ins: submission.files, claims.params_gap; 6: verdict.error,
# notebook.saved_error; 7: quiz.error.
FACTS_SCHEMA = 7


# What the key leaves out: each Options field, and each RunLimits field, that does not change the facts a run
# measures, with why. Every other field is in the key (tests/test_cache_key.py goes through them all).
NOT_FACTS: dict[str, str] = {
    "data": "where MNIST is, not which digits: the test set is the same 10,000 wherever it is kept "
            "(`grade data verify` checks a folder)",
    "gpu": "the device asked for, not what is measured: None resolves per machine, and the facts name the device "
           "that trained (train.device)",
    "gpu_index": "which of the machine's GPUs a pool slot uses",
    "keep": "where the executed notebook and the model are copied for the instructor",
    "warm": "how the model is measured (a child of a kept zygote or a fresh sandbox): the same copy, the same "
            "predictions",
}
LIMITS_NOT_FACTS: dict[str, str] = {
    "cpus": "how many cores a submission gets: the speed of a run, not what it measures",
    "jobs_per_gpu": "how many submissions share a GPU at once: the speed of a run, not what it measures",
}


class FactsCache:
    """facts per (content, run settings), as JSON files under out/.cache/."""

    def __init__(self, out: Path):
        self.folder = out / ".cache"

    @staticmethod
    def settings(options: Options) -> dict:
        """What decides the facts a run measures besides the file (plain JSON values): facts measured under other
        settings are another run's. A rubric change that leaves these alone needs no run, only scoring."""
        settings = {"mode": options.mode, "variable": options.variable, "variable_named": options.variable_named,
                    "limits": options.limits.model_dump(exclude=set(LIMITS_NOT_FACTS)), "dry_run": options.dry_run,
                    "sandbox": options.sandbox, "version": __version__, "environment": str(options.environment),
                    "compat": list(options.compat), "schema": FACTS_SCHEMA}
        if options.unseen:  # facts with eval.unseen_accuracy are another run's; keys without it stay as they were
            settings["unseen"] = True
        return json.loads(json.dumps(settings))

    @staticmethod
    def key(submission: Submission, options: Options) -> str:
        settings = {"digest": submission.digest, **FactsCache.settings(options)}
        return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:32]

    def get(self, key: str) -> Optional[tuple[Facts, float]]:
        try:
            data = json.loads((self.folder / f"{key}.json").read_text())
            return Facts.model_validate(data["facts"]), float(data["seconds"])
        except (OSError, ValueError, KeyError):
            return None

    def put(self, key: str, facts: Facts, seconds: float) -> None:
        """Keep the facts for `key`; not when the grader failed (they say nothing about the submission)."""
        if not facts.verdict.graded:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        # a temporary name of its own: two students who handed in the same bytes share a key, graded at once
        handle, name = tempfile.mkstemp(prefix=f"{key}.", suffix=".tmp", dir=self.folder)
        with os.fdopen(handle, "w") as tmp:
            tmp.write(json.dumps({"facts": facts.to_json(), "seconds": seconds}))
        Path(name).replace(self.folder / f"{key}.json")
