"""mnist-grader: grade convolutional-network assignments by measuring, not by trusting."""

__version__ = "0.1.0"
