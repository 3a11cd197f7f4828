"""Re-grading an assignment (POST /v1/assignments/{id}/regrade): its rubric read again from its file, every graded
submission re-scored from the facts stored with its report (nothing runs), the new score recorded, and the
callback and grade passback made due again, through the store's outbox, only where the score changed.

Only each student's latest graded submission sends anything: the LMS holds that one's score, and an older
submission's new score must not overwrite it. A submission whose facts were measured under other run settings
(the rubric's mode, limits or model variable changed) cannot be re-scored: it is listed as needing a re-run,
never skipped silently.
"""

from __future__ import annotations

import threading

from grader.api import options_for
from grader.report.changes import Change, Standing, diff, tally
from grader.rubric.sheet import ScoreSheet
from grader.service.assignments import Assignments
from grader.service.grading import Grader
from grader.service.store import JobResult, Store

_ONE_AT_A_TIME = threading.Lock()  # two re-grades of one server never interleave their writes


def regrade(store: Store, assignments: Assignments, grader: Grader, assignment_id: str) -> dict:
    """Re-grade the assignment; the answer of the endpoint (the diff's summary, the changes, the re-runs)."""
    with _ONE_AT_A_TIME:
        assignment = assignments.reload(assignment_id)
        options = options_for(assignment.rubric, data=grader.data)
        jobs = store.graded(assignment.id)
        latest = {job.student: job.id for job in jobs}  # oldest first: each student's last one wins
        before: dict[str, Standing] = {}
        after: dict[str, Standing] = {}
        reruns, problems, delivered = [], [], set()
        for job in jobs:
            sheet = grader.rescored(job, assignment, options)
            if isinstance(sheet, str):
                reruns.append({"id": job.id, "student_id": job.student, "why": sheet})
                continue
            old = ScoreSheet.model_validate(job.sheet)
            before[job.id], after[job.id] = Standing.of(job.id, old), Standing.of(job.id, sheet)
            if sheet.model_dump(mode="json") == job.sheet or sheet.score is None:
                continue
            changed = (sheet.score, sheet.max_score, sheet.passed) != (job.score, job.max_score, job.passed)
            deliver = changed and latest[job.student] == job.id
            result = JobResult(score=sheet.score, max_score=sheet.max_score, passed=sheet.passed,
                               sheet=sheet.model_dump(mode="json"), report_dir=job.report_dir or "")
            if not store.rescore(job, result, deliver=deliver):
                continue
            if deliver and (job.callback_url or job.lti):
                delivered.add(job.id)
            try:
                grader.rewrite_report(job, assignment, options, sheet)
            except Exception as exc:  # the score is recorded and sent; one report never stops the re-grade
                problems.append({"id": job.id, "student_id": job.student,
                                 "what": f"its report was not written again ({exc.__class__.__name__}: {exc})"[:500]})
    changes = diff(before, after)
    students = {job.id: job.student for job in jobs}
    counts = tally(changes)
    answer = {
        "assignment": assignment.id, "rubric": {"id": assignment.rubric.id, "title": assignment.rubric.title,
                                                "file": str(assignment.path)},
        "graded": len(jobs), "rescored": len(after), "needs_rerun": len(reruns), **counts.as_json(),
        "deliveries_queued": len(delivered),
        "summary": f"{len(after)} of {len(jobs)} graded submissions re-scored from their stored facts (nothing "
                   f"ran): {counts.line()}; {len(delivered)} with a callback or grade passback sent again"
                   + (f"; {len(reruns)} need a re-run (see reruns)" if reruns else ""),
        "changes": [_change(c, students[c.student], sent_again=c.student in delivered,
                            superseded=latest[students[c.student]] != c.student) for c in changes],
        "reruns": reruns,
    }
    if problems:
        answer["problems"] = problems
    if reruns:
        answer["rerun_note"] = (f"{len(reruns)} submission(s) were not re-scored: their facts cannot answer the "
                                "rubric as it is now; each must be graded again (submit its notebook again, or ask "
                                "the operator to) before its score changes")
    return answer


def _change(change: Change, student: str, *, sent_again: bool, superseded: bool) -> dict:
    """One changed submission as the answer lists it (the diff is keyed by job id)."""
    row = change.row()
    return {"id": row.pop("student"), "student_id": student, **{k: v for k, v in row.items() if k != "note"},
            "sent_again": sent_again, "superseded": superseded}
