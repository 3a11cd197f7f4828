"""What changed, for errors that come from code written for older libraries or for Colab."""

from __future__ import annotations

import re

COLAB_ONLY = "`google.colab` exists only on Colab: guard it with `if 'google.colab' in sys.modules:` or remove the cell"

# (pattern on "ErrorName: message", what to tell the student)
_HINTS: list[tuple[str, str]] = [
    (r"AttributeError: '\w*[Ii]ter\w*' object has no attribute 'next'",
     "DataLoader iterators lost `.next()` in PyTorch 1.13: write `next(dataiter)` instead of `dataiter.next()`."),
    (r"invalid index of a 0-dim tensor",
     "Losses are 0-dim tensors since PyTorch 0.4: write `loss.item()` instead of `loss.data[0]`."),
    (r"ModuleNotFoundError: No module named 'google\.colab'",
     COLAB_ONLY + " (an instructor can turn on the `colab` compat profile, `environment: compat: [colab]` in the "
     "rubric: Drive is then the hand-in folder, and the other Colab helpers do nothing)."),
    (r"AttributeError: module 'torch\.cuda' has no attribute|Torch not compiled with CUDA enabled|"
     r"Found no NVIDIA driver|CUDA driver initialization failed|no CUDA GPUs are available",
     "The grader may run without a GPU: pick the device with "
     "`torch.device('cuda' if torch.cuda.is_available() else 'cpu')` and use `.to(device)` instead of `.cuda()`."),
    (r"ImportError: cannot import name 'PILLOW_VERSION'",
     "Pillow 7 removed PILLOW_VERSION; torchvision 0.5+ no longer needs it: upgrade the import, not Pillow."),
    (r"TypeError: __init__\(\) got an unexpected keyword argument 'size_average'",
     "`size_average` was replaced by `reduction='mean'` / `'sum'` in PyTorch 1.0."),
    (r"AttributeError: module 'keras\.(src\.)?backend' has no attribute '(gradients|function|get_session|placeholder)'",
     "`K.gradients`, `K.function` and sessions are TensorFlow 1 graph mode, which Keras 3 does not have: this cell "
     "cannot run in the grader, and grading goes on without it. To look at gradients, use "
     "`torch.autograd.grad` on the model's output (Keras 3 runs on the torch backend here)."),
    (r"TypeError: \w*(LR|Scheduler|Plateau|Restarts)\.__init__\(\) got an unexpected keyword argument 'verbose'",
     "Learning-rate schedulers lost `verbose=` in PyTorch 2.7 (deprecated since 2.2): remove `verbose=True` and "
     "print `scheduler.get_last_lr()` after `scheduler.step()` to see the rate."),
    (r"UnpicklingError: Weights only load failed",
     "`torch.load` loads only tensors by default since PyTorch 2.6 (`weights_only=True`), so a whole pickled model "
     "no longer loads: save `model.state_dict()` and load it with `model.load_state_dict(torch.load(path))`, or pass "
     "`weights_only=False` for a file your own notebook wrote."),
    (r"RuntimeError: .*Attempting to deserialize object on a CUDA device",
     "The notebook loads weights saved on a GPU: pass `map_location=device` to `torch.load`."),
]


def hint_for(error: str) -> str | None:
    """A sentence on what changed, for a known incompatibility; None for anything else."""
    for pattern, hint in _HINTS:
        if re.search(pattern, error):
            return hint
    return None

