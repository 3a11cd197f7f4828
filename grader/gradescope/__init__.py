"""The Gradescope autograder: `build` makes the zip Gradescope accepts, `run` is what its run_autograder calls.

A front end like the CLI: it grades through grader.api and nothing below it.
"""
