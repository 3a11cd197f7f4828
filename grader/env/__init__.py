"""Grading environments: the venv each assignment's notebooks run in (spec, content hash, build, cache)."""
