"""Layer stacks: sizes, receptive fields and parameters (pure), and reading them from specs or torch models."""

from grader.arch.engine import Row, Shape, Table, analyze
from grader.arch.layers import Layer

__all__ = ["Layer", "Row", "Shape", "Table", "analyze"]
