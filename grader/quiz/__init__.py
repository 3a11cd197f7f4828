"""Quizzes whose keys are computed by the layer-stack engine, never typed.

The data flow, one module per stage:

    bank.py      quizzes/*.yaml -> Bank (schema; errors name file, line, allowed values)
    draw.py      Bank + student -> DrawnQuiz (seeded by sha256(quiz id, student id); invalid stacks redrawn)
    keys.py      drawn stack -> Key (value, display, worked recurrence), computed by the engine
    answers.py   YAML / JSON / CSV / notebook cell tagged `quiz` -> {question id: raw answer}; normalising
    diagnose.py  wrong answer -> which common mistake it matches (the key recomputed under that mistake)
    check.py     DrawnQuiz + answers -> QuizResult (pure scoring), QuizFacts, Gradescope results
    export/      DrawnQuiz -> md, html, json, gift, qti
"""

from grader.quiz.bank import Bank, load_bank
from grader.quiz.check import QuestionResult, QuizResult, check_answers, gradescope_results
from grader.quiz.draw import DrawnQuestion, DrawnQuiz, draw_quiz

__all__ = ["Bank", "DrawnQuestion", "DrawnQuiz", "QuestionResult", "QuizResult", "check_answers",
           "draw_quiz", "gradescope_results", "load_bank"]
