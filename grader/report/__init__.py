"""Reports: one page per student (HTML, Markdown), Gradescope results, the batch gradebook.

Everything renders from the facts and the score sheet; nothing re-measures.
`write_student_reports` writes a student's folder, `gradebook_rows` /
`write_gradebook` the batch's CSV, `write_class_pages` the instructor's
similarity.html and instructor.html, `gradescope.results` is the one Gradescope
writer (rubric items and quiz questions alike). `audience` decides what a
student's outputs may show: no hidden item, no other student.
"""

from grader.report.gradebook import GradebookEntry, gradebook_rows, write_gradebook
from grader.report.gradescope import GradescopeTest, results, sheet_results
from grader.report.html import render_html
from grader.report.markdown import render_markdown
from grader.report.summary import ReportView, build_view
from grader.report.write import write_class_pages, write_student_reports

__all__ = [
    "GradebookEntry", "GradescopeTest", "ReportView", "build_view", "gradebook_rows", "render_html",
    "render_markdown", "results", "sheet_results", "write_class_pages", "write_gradebook", "write_student_reports",
]
