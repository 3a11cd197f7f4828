"""Small static-mode rubrics the class-level tests grade with (nothing runs: a class is graded in seconds)."""

COMMENTS_ONLY = """\
id: comments-only
title: Comments only
mode: static
items:
  - id: comments
    title: Every code cell is commented
    fact: notebook.comment_coverage
    ge: 1.0
    points: 10
"""

CELLS = """\
id: cells
title: Cells
mode: static
items:
  - id: cells
    title: At least three code cells
    fact: notebook.code_cells
    ge: 3
    points: 5
"""
