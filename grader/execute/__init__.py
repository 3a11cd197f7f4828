"""Sandboxed execution: run a submission's notebook with a real kernel and capture its model."""
