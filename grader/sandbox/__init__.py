"""The sandbox primitive: one process tree in bubblewrap, inside limits, killed as a whole.

`run_sandboxed(argv, spec)` is the one entry point; notebook execution is
built on top of it elsewhere.
"""

from grader.sandbox.bwrap import SandboxSpec, bwrap_available
from grader.sandbox.run import SandboxResult, run_sandboxed

__all__ = ["SandboxResult", "SandboxSpec", "bwrap_available", "run_sandboxed"]
