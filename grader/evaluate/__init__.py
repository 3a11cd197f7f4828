"""Clean evaluation: the exported model on the MNIST test set, in a process that imports no student code."""
