"""The table of the course's common errors: what to change, for an error a cell raised ("ErrorName: message").

Code written for older libraries or for Colab, a GPU the grader does not have,
and the shape mistakes every first CNN makes. Verdict messages and reports
(`verdict.error.hint`) quote the hint; a rubric's feedback can too.
"""

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
    (r"mat1 and mat2 shapes cannot be multiplied|size mismatch, m1:",
     "The flattened size does not match the first linear layer's `in_features`: print `x.shape` just before "
     "`view` / `flatten` and set `in_features` to channels x height x width (or end with global average pooling)."),
    (r"Expected input batch_size \(\d+\) to match target batch_size",
     "The model returns a different number of rows than there are labels: flatten with `x.view(x.size(0), -1)` "
     "(or `x.flatten(1)`), not `x.view(-1, n)` with a guessed `n`."),
    (r"Expected (3D \(unbatched\) or )?4D \(batched\) input|Expected 4-dimensional input",
     "Conv2d takes images as (batch, channels, height, width): add the channel and batch axes, e.g. "
     "`x.view(-1, 1, 28, 28)` or `x.unsqueeze(0)` for one image."),
    (r"expected input\[.*\] to have \d+ channels",
     "A convolution's `in_channels` does not match the channels it receives: MNIST has 1 channel, and each layer's "
     "`in_channels` is the previous layer's `out_channels`."),
    (r"expected scalar type Long but found|\"nll_loss\w*\" not implemented for 'Float'",
     "Class labels must be integers (`torch.long`): pass the dataset's targets as they are, or `.long()` them."),
    (r"Can't call numpy\(\) on Tensor that requires grad",
     "Detach a tensor before turning it into numpy: `t.detach().cpu().numpy()`, or compute under `torch.no_grad()`."),
    (r"element 0 of tensors does not require grad",
     "The loss is not connected to the model's parameters: compute it from `model(x)` without `.detach()`, "
     "`.item()` or `torch.no_grad()` on the way, and do not re-wrap outputs in `torch.tensor(...)`."),
    (r"\bvolatile\b",
     "`volatile=True` was removed in PyTorch 0.4: evaluate under `with torch.no_grad():` instead, and drop "
     "`Variable(...)` (tensors carry gradients themselves)."),
    (r"ModuleNotFoundError: No module named 'torchsummary'",
     "`torchsummary` is not part of the grading environment: count the parameters with "
     "`sum(p.numel() for p in model.parameters() if p.requires_grad)` and `print(model)`, or hand the package in "
     "only where the rubric's environment installs it (`pip install torchsummary` works on your own machine)."),
]


def hint_for(error: str) -> str | None:
    """A sentence on what changed, for a known incompatibility; None for anything else."""
    for pattern, hint in _HINTS:
        if re.search(pattern, error):
            return hint
    return None

