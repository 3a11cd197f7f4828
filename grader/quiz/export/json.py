"""JSON: {"quiz", "student", "questions": [{"id", "kind", "text", "points", ("options"), ("answer")}]}.

"answer" (with the key only) is written the way an answers file gives it, so the
key fed back to `grade quiz check` scores full marks.
"""

from __future__ import annotations

import json
from typing import Any

from grader.quiz.draw import DrawnQuiz


def document(quiz: DrawnQuiz, with_key: bool = False) -> dict[str, Any]:
    questions = []
    for q in quiz.questions:
        item: dict[str, Any] = {"id": q.id, "kind": q.kind, "text": q.text, "points": q.points}
        if q.options:
            item["options"] = {chr(97 + i): option for i, option in enumerate(q.options)}
        elif q.true_false:
            item["options"] = {"true": "true", "false": "false"}
        if with_key:
            item["answer"] = q.key.answer
            item["working"] = list(q.key.working)
            item["explanation"] = q.explanation
        questions.append(item)
    return {"quiz": quiz.quiz, "title": quiz.title, "student": quiz.student, "questions": questions}


def render(quiz: DrawnQuiz, with_key: bool = False) -> str:
    return json.dumps(document(quiz, with_key), indent=2, ensure_ascii=False) + "\n"
