"""Is the harness's epoch count borne out by counters kept elsewhere? Pure arithmetic on plain numbers.

The harness counts epochs inside the student's kernel (grader.execute.kernel_harness): samples the
training DataLoader handed out while gradients were on, over the training set's size. Whatever runs in
that process, the student's code can change, the harness's counters included: they live in closures,
out of easy reach but not out of reach. Training 40 epochs and then setting the count to 12 must not
pass a budget of 20, so the count is set against two figures that the student's code would have to
change as well, each in another place, and each a lower bound on the batches trained:

- `bn_batches`: the largest `num_batches_tracked` of the graded model's batch-norm layers, read by the
  grader from the exported program (grader.arch.stored_state), not from the kernel's records. A forward
  pass in training mode adds one per batch. The batches the loaders handed out with gradients off are
  taken away: an evaluation loop that forgets `model.eval()` moves the counters too.
- `optimizer_state_steps`: the largest per-parameter `step` that torch's optimizers keep in their own
  state (Adam, AdamW, RMSprop, Adagrad; SGD keeps none), or a fitted Keras model's optimizer its
  `iterations`, read by the harness at the end of the run: one per optimizer step, whatever the
  harness's own step counter says.

Divided by the batches in one pass of the training loader (its `len()`, recorded when the loop starts;
for Keras, a fit's optimizer steps over its epochs; never derived from the samples counted), each says
how many epochs the notebook trained at least.
When the larger says more than the count, beyond `RELATIVE` and `ABSOLUTE` (a `drop_last` loader, a
learning-rate search on another batch size), they disagree: the count was changed or missed training,
and it backs no grade. Fewer is no disagreement: the harness counts every model the notebook trained,
the graded model's counters only its own, and a reloaded checkpoint carries an earlier count.

Not the wall time: the host measures the run's seconds, which the student's process cannot shorten,
but seconds bound the epochs only from above, given a time per epoch measured in the kernel. They
cannot show that a count is too low, which is the change that passes a budget.

What this does not catch: a student who changes the harness's closures, the model's batch-norm counters
and the optimizer's state together, consistently. The facts say where each figure comes from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from grader.formatting import num

RELATIVE = 0.10  # the cross-check may exceed the count by 10% of it ...
ABSOLUTE = 0.5  # ... plus half an epoch


@dataclass(frozen=True)
class EpochsCheck:
    at_least: Optional[float]  # epochs the cross-checks show at least (None: no cross-check available)
    disagrees: Optional[bool]  # None: nothing to compare
    checked: Optional[float]  # the harness's count, when a cross-check backs it; else None
    message: str  # names both figures and where they come from


def check_epochs(*, counted: Optional[float], batches_per_epoch: Optional[int], bn_batches: Optional[int],
                 no_grad_batches: Optional[int], optimizer_state_steps: Optional[int]) -> EpochsCheck:
    """Set the harness's epoch count (`counted`) against the model's batch-norm counters and the optimizers'
    own step counts."""
    if counted is None:
        return EpochsCheck(None, None, None, "the harness counted no training epochs (no DataLoader handed out "
                                             "batches of a training set while gradients were on)")
    bounds = _lower_bounds(batches_per_epoch, bn_batches, no_grad_batches, optimizer_state_steps)
    counted_text = f"the harness in the notebook's process counted {num(counted)} epochs"
    if not bounds:
        why = ("the training DataLoader has no length" if not batches_per_epoch else
               "the graded model has no batch-norm counters and no optimizer kept a step count (SGD keeps none)")
        return EpochsCheck(None, None, None, f"{counted_text}, and no second counter can confirm it: "
                                             f"{why}")
    at_least, source, batches = max(bounds)
    shown = (f"{source} show at least {num(round(at_least, 2))} epochs ({batches}, {num(batches_per_epoch)} a "
             "pass of the training loader)")
    if at_least > counted * (1 + RELATIVE) + ABSOLUTE:
        return EpochsCheck(at_least, True, None, f"{counted_text}, but {shown}: the count was changed or missed "
                                                 "training, so it cannot decide the epoch budget")
    return EpochsCheck(at_least, False, counted, f"{counted_text}; {shown}: they agree")


def _lower_bounds(batches_per_epoch: Optional[int], bn_batches: Optional[int], no_grad_batches: Optional[int],
                  optimizer_state_steps: Optional[int]) -> list[tuple[float, str, str]]:
    """(epochs at least, whose figure, the batches it counts) for each cross-check available."""
    if not batches_per_epoch:
        return []
    bounds = []
    if bn_batches is not None:
        trained = max(bn_batches - (no_grad_batches or 0), 0)
        batches = f"{num(bn_batches)} batches in training mode"
        if no_grad_batches:
            batches += f" less {num(no_grad_batches)} handed out without gradients"
        bounds.append((trained / batches_per_epoch, "the model's batch-norm counters", batches))
    if optimizer_state_steps is not None:
        bounds.append((optimizer_state_steps / batches_per_epoch, "the optimizers' own step counts",
                       f"{num(optimizer_state_steps)} steps"))
    return bounds
