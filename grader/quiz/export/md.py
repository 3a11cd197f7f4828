"""Markdown: a printable quiz, and with the key the answers and the worked recurrences."""

from __future__ import annotations

from grader.quiz.draw import DrawnQuestion, DrawnQuiz


def _points(points: float) -> str:
    return f"{points:g} point{'' if points == 1 else 's'}"


def _question(n: int, q: DrawnQuestion, with_key: bool) -> list[str]:
    lines = [f"### {n}. {q.title} ({_points(q.points)})", "", q.text, ""]
    if q.options:
        lines += [f"- {chr(97 + i)}) {option}" for i, option in enumerate(q.options)] + [""]
    elif q.true_false:
        lines += ["- true", "- false", ""]
    if not with_key:
        return lines + ["Answer: ____________", "", f"<sub>answer as `{q.id}: ...`</sub>", ""]
    lines += [f"**Answer:** {q.key.display}", ""]
    if q.key.working:
        lines += ["```"] + list(q.key.working) + ["```", ""]
    if q.explanation:
        lines += [q.explanation, ""]
    return lines


def render(quiz: DrawnQuiz, with_key: bool = False) -> str:
    lines = [f"# {quiz.title}", "", f"Quiz `{quiz.quiz}` for student `{quiz.student}`"
             f" — {len(quiz.questions)} question{'' if len(quiz.questions) == 1 else 's'}, {_points(quiz.max_score)}"
             + (" — **answer key**" if with_key else ""), ""]
    if quiz.description:
        lines += [quiz.description, ""]
    if not with_key:
        lines += ["Sizes as HxWxC (e.g. 195x195x32) or HxW, receptive fields as one number or HxW.", ""]
    for n, q in enumerate(quiz.questions, 1):
        lines += _question(n, q, with_key)
    return "\n".join(lines).rstrip() + "\n"
