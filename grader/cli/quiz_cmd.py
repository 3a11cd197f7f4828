"""`grade quiz make|check|validate`: per-student quiz variants with computed keys, and checking answers."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

from rich.console import Console
from rich.table import Table as RichTable

from grader.errors import GraderError
from grader.quiz.answers import FORMATS as ANSWER_FORMATS, format_of, parse_answers
from grader.quiz.bank import __doc__ as BANK_DOC, load_bank
from grader.quiz.check import QuizResult, check_answers, gradescope_results
from grader.quiz.draw import draw_quiz
from grader.quiz.export import FORMATS, SUFFIX, export

HELP = """\
Quizzes on output sizes, receptive fields and parameter counts whose keys are
computed by the layer-stack engine (the same one as `grade arch`), never typed.
Each student gets their own numbers: the variant is seeded by sha256(quiz id,
student id), so the same student gets the same quiz on every run and machine.

  grade quiz make quizzes/cnn-basics.yaml --student s123              a student's copy (Markdown)
  grade quiz make quizzes/cnn-basics.yaml --student s123 --count 10 --format html -o s123.html
  grade quiz make quizzes/cnn-basics.yaml --student s123 --format json --with-key
  grade quiz make quizzes/cnn-basics.yaml --student s123 --format qti --with-key -o s123.zip   (Canvas)
  grade quiz make quizzes/cnn-basics.yaml --student s123 --format gift --with-key -o s123.gift.txt (Moodle)
  grade quiz check quizzes/cnn-basics.yaml answers.yaml --student s123
  grade quiz check quizzes/cnn-basics.yaml quiz.ipynb --student s123 --json --results results.json
  grade quiz make quizzes/cnn-basics.yaml --student s1 --student s2 --format html -o quiz-{student}.html
  grade quiz check quizzes/cnn-basics.yaml answers.csv --student s1 --student s2   (a CSV with a student column)
  grade quiz validate quizzes/cnn-basics.yaml                         draw 100 students, report variants

Answers: YAML or JSON {question-id: answer}, CSV `id,answer` (optionally a
`student` column), or a notebook cell tagged `quiz` holding `question-id: answer`
lines. Sizes may be written 195x195x32, 195 x 195 x 32 or (195, 195, 32); a
square HxW as 22x22 or 22; counts as 18432 or 18,432; choices as a letter or the
option's text; true/false as true/false/yes/no.

Feedback shows the worked recurrence for the student's numbers and names the
mistake a wrong answer matches (RF doubled at a max-pool, padding or floor
forgotten, bias or batch norm counted or left out, input/output channels
swapped, the layer before/after).

Exit codes: 0 all answers correct (make/validate: done), 1 some answers wrong,
2 a problem with the bank, the answers file or an option (the message says what
to fix).

A bank (quizzes/*.yaml) in brief:
{BANK_EXAMPLE}
Top level: quiz (the id that seeds variants), title, description, count (questions
per student; default all), points, stacks (named stacks), questions.
Computed kinds: shape (ask: hwc | hw | c), rf, params (layer: optional; bias, bn:
true | false), formula (compute: jump | repeats_to_rf | repeats_to_size with
target: | expr: over table, rows, row). choice: options + answer (letter or
text) + explanation, or answer: true | false. Texts may name the params and
network, input, output, layers, layer, label, target, spec.
"""


HELP = HELP.replace("{BANK_EXAMPLE}", BANK_DOC[BANK_DOC.index("    quiz:"):].rstrip() + "\n")


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("quiz", help="per-student quizzes with computed keys; check answers",
                            description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="quiz_command", metavar="ACTION")
    parser.set_defaults(handler=lambda args: _usage(parser))

    make = commands.add_parser("make", help="a student's variant of the quiz",
                               description="Draw a student's variant and print it (or write it with -o).\n\n"
                               "  grade quiz make quizzes/cnn-basics.yaml --student s123 --format html -o s123.html",
                               formatter_class=argparse.RawDescriptionHelpFormatter)
    make.add_argument("bank", metavar="BANK", help="quiz bank (quizzes/*.yaml)")
    _student(make)
    make.add_argument("--format", choices=list(FORMATS), default="md",
                      help="md (default), html (self-contained, printable), json, gift (Moodle), qti (Canvas zip)")
    make.add_argument("--with-key", action="store_true",
                      help="include the answers and worked recurrences (needed for gift and qti)")
    _count(make)
    make.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of standard output")
    make.set_defaults(handler=run_make)

    check = commands.add_parser("check", help="score a student's answers against their variant",
                                description="Score answers against the student's own variant.\n\n"
                                "  grade quiz check quizzes/cnn-basics.yaml answers.yaml --student s123 --json",
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    check.add_argument("bank", metavar="BANK", help="quiz bank (quizzes/*.yaml)")
    check.add_argument("answers", metavar="ANSWERS", help="answers: .yaml, .json, .csv or .ipynb (cell tagged quiz)")
    _student(check)
    _count(check)
    check.add_argument("--answers-format", choices=list(ANSWER_FORMATS), help="when the file name does not tell")
    check.add_argument("--json", action="store_true", help="print the result as JSON")
    check.add_argument("--results", metavar="FILE", help="also write a Gradescope results.json to FILE")
    check.set_defaults(handler=run_check)

    validate = commands.add_parser("validate", help="check a bank: schema, and a valid variant for many students",
                                   description="Load the bank and draw every question for N students.\n\n"
                                   "  grade quiz validate quizzes/cnn-basics.yaml --students 200",
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    validate.add_argument("bank", metavar="BANK", help="quiz bank (quizzes/*.yaml)")
    validate.add_argument("--students", type=int, default=100, metavar="N", help="students to draw for (default 100)")
    validate.add_argument("--json", action="store_true", help="print the summary as JSON")
    validate.set_defaults(handler=run_validate)


def _student(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--student", required=True, action="append", metavar="ID",
                        help="student id (seeds the variant); repeat it for several students: one output each, "
                             "and a file name with {student} in it for each")


def _outputs(students: list[str], output: str | None, flag: str, example: str) -> list[tuple[str, str | None]]:
    """(student, where their output goes) for each student given (once each): `output` for one student; for
    several, `output` with {student} replaced by each id (GraderError when it has no {student})."""
    students = list(dict.fromkeys(s.strip() for s in students))
    if len(students) == 1:
        return [(students[0], output)]
    if output is None or "{student}" not in output:
        given = f"{flag} {output} names one file" if output else f"no {flag} was given"
        raise GraderError(f"{len(students)} students ({', '.join(students)}) need a file each, and {given}",
                          where=flag, fix=f"put {{student}} in the file name: {flag} {example}")
    for student in students:
        if "/" in student or "\\" in student or student in (".", ".."):
            raise GraderError(f"the student id {student!r} cannot be part of a file name", where="--student",
                              fix="give ids without / or \\ (the ids the LMS uses)")
    return [(student, output.replace("{student}", student)) for student in students]


def _count(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--count", type=int, metavar="N",
                        help="pick N questions for the student (default: the bank's count, else all); "
                        "check needs the same N as make")


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _write(data: str | bytes, output: str | None) -> None:
    if output:
        Path(output).write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
        print(f"wrote {output}", file=sys.stderr)
    elif isinstance(data, bytes):
        if sys.stdout.isatty():
            raise GraderError("a zip file is not for the terminal", where="--format qti",
                              fix="add -o quiz.zip (or redirect: > quiz.zip)")
        sys.stdout.buffer.write(data)
    else:
        sys.stdout.write(data)


def run_make(args: argparse.Namespace) -> int:
    bank = load_bank(args.bank)
    for student, output in _outputs(args.student, args.output, "-o", f"quiz-{{student}}{SUFFIX[args.format]}"):
        _write(export(draw_quiz(bank, student, args.count), args.format, args.with_key), output)
    return 0


def _read_answers(path: str, fmt: str | None, student: str) -> dict:
    fmt = fmt or format_of(path)
    if not fmt:
        raise GraderError("cannot tell the answers' format from the file name", where=path,
                          fix="name it .yaml, .json, .csv or .ipynb, or pass --answers-format")
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise GraderError("file not found", where=path, fix="check the path") from None
    except UnicodeDecodeError:
        raise GraderError("not a UTF-8 text file", where=path, fix="save the answers as UTF-8") from None
    return parse_answers(text, fmt, path, student.strip())


def run_check(args: argparse.Namespace) -> int:
    bank = load_bank(args.bank)
    results = []
    for student, output in _outputs(args.student, args.results, "--results", "results-{student}.json"):
        started = time.perf_counter()
        answers = _read_answers(args.answers, args.answers_format, student)
        result = check_answers(bank, answers, student, args.count)
        if output:
            Path(output).write_text(json.dumps(gradescope_results(result, time.perf_counter() - started), indent=2)
                                    + "\n", encoding="utf-8")
        results.append(result)
    if args.json:  # one student: their result; several: a list of them
        shown = [r.model_dump(mode="json") for r in results]
        json.dump(shown[0] if len(shown) == 1 else shown, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        for result in results:
            _print_result(result)
    return 0 if all(r.passed_all for r in results) else 1


_STYLE = {"correct": "green", "wrong": "red", "incomplete": "yellow", "unreadable": "yellow", "missing": "dim"}


def _print_result(result: QuizResult) -> None:
    console = Console() if sys.stdout.isatty() else Console(width=120)
    table = RichTable(title=f"{result.quiz} — {result.student}: {result.score:g} / {result.max_score:g}",
                      title_justify="left")
    for column in ("question", "status", "score", "answer", "expected", "looks like"):
        table.add_column(column, justify="right" if column == "score" else "left")
    for q in result.questions:
        table.add_row(q.id, f"[{_STYLE[q.status]}]{q.status}[/]", f"{q.score:g}/{q.max_score:g}", q.answer or "",
                      q.expected, (q.diagnosis or "").replace("_", " "))
    console.print(table)
    for q in result.questions:
        if q.status != "correct":
            console.print(f"\n[bold]{q.id}[/bold]", highlight=False)
            console.print(q.feedback, markup=False, highlight=False)
    if result.unknown_answers:
        console.print(f"\nnot in this student's quiz (ignored): {', '.join(result.unknown_answers)}", highlight=False)


def run_validate(args: argparse.Namespace) -> int:
    if args.students < 1:
        raise GraderError("--students must be at least 1", where="--students", fix="use --students 100")
    bank = load_bank(args.bank)
    variants: dict[str, set] = {q.id: set() for q in bank.questions}
    for n in range(args.students):
        for q in draw_quiz(bank, f"validate-{n}", len(bank.questions)).questions:
            variants[q.id].add((q.text, q.options, q.key.display))
    kinds = Counter(q.kind for q in bank.questions)
    computed = sum(q.kind != "choice" for q in bank.questions)
    summary = {"quiz": bank.quiz, "questions": len(bank.questions), "computed": computed, "kinds": dict(kinds),
               "variants": {qid: len(v) for qid, v in variants.items()}, "students": args.students}
    if args.json:
        json.dump(summary, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    console = Console() if sys.stdout.isatty() else Console(width=120)
    table = RichTable(title=f"{bank.quiz}: {len(bank.questions)} questions, {computed} computed, "
                      f"every one drawn for {args.students} students", title_justify="left")
    for column in ("question", "kind", "distinct variants"):
        table.add_column(column)
    for question in bank.questions:
        table.add_row(question.id, question.kind, str(len(variants[question.id])))
    console.print(table)
    return 0
