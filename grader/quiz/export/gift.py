"""Moodle GIFT: one question per block, separated by a blank line.

Emitted subset:
    // comment lines (quiz, student, points)
    ::title::text{#value:tolerance####feedback}            numerical (one number)
    ::title::text{=form =form####feedback}                 short answer (sizes: every accepted form)
    ::title::text{=right ~wrong ~wrong####feedback}        multiple choice
    ::title::text{TRUE####feedback} / {FALSE####...}       true / false
Each file starts `$CATEGORY: $course$/<quiz>/<student>`: one category per student's variant.
Special characters ~ = # { } : and the backslash are escaped with a backslash;
a newline inside text is written as \\n (a blank line would end the question).
"""

from __future__ import annotations

from grader.quiz.draw import DrawnQuestion, DrawnQuiz

SPECIAL = "\\~=#{}:"


def escape(text: str) -> str:
    out = "".join("\\" + ch if ch in SPECIAL else ch for ch in text)
    return out.replace("\r\n", "\n").replace("\n", "\\n")


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def size_forms(value: tuple[float, ...]) -> list[str]:
    """The ways a size can be written that the checker accepts: 22x22, 22 x 22, (22, 22), and 22 for a square."""
    parts = [_num(v) for v in value]
    forms = ["x".join(parts), " x ".join(parts), "(" + ", ".join(parts) + ")"]
    if len(value) == 2 and value[0] == value[1]:
        forms.append(parts[0])
    return forms


def _answers(q: DrawnQuestion) -> str:
    key = q.key
    feedback = "\n".join(list(key.working) + ([q.explanation] if q.explanation else []))
    tail = f"####{escape(feedback)}" if feedback else ""
    if isinstance(key.value, bool):
        return ("TRUE" if key.value else "FALSE") + tail
    if isinstance(key.value, str):
        return " ".join(("=" if chr(97 + i) == key.value else "~") + escape(option)
                        for i, option in enumerate(q.options)) + tail
    if len(key.value) == 1:
        return f"#{_num(key.value[0])}:{_num(key.tolerance)}" + tail
    return " ".join("=" + escape(form) for form in size_forms(key.value)) + tail


def category(name: str) -> str:
    """A category name: Moodle splits $CATEGORY paths on `/`."""
    return name.replace("/", "-").strip() or "-"


def render(quiz: DrawnQuiz, with_key: bool = True) -> str:
    # one category per student's variant: importing several students' files never mixes their questions
    blocks = [f"// {quiz.title}\n// quiz {quiz.quiz}, student {quiz.student}\n\n"
              f"$CATEGORY: $course$/{category(quiz.quiz)}/{category(quiz.student)}"]
    for q in quiz.questions:
        blocks.append(f"// {q.kind}, {q.points:g} point(s)\n::{escape(q.id)}::{escape(q.text)}{{{_answers(q)}}}")
    return "\n\n".join(blocks) + "\n"
