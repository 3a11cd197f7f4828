"""The training loop shared by the benchmark, the tests and the notebooks.

The whole data set lives on the device as one normalised float tensor; a batch
is an index into it, and augmentation (a small random rotation / shift) runs on
the batch with `F.affine_grid` / `F.grid_sample`, so an epoch is bound by the
network's compute, not by Python or DataLoader workers. The batches still come
out of a `DataLoader` over a dataset with `train` and a length, because that is
what the grader's kernel harness watches: it counts epochs from the samples a
model sees against the training set's size, and its dry run empties loaders.

`make_notebooks.py` pastes the source of `seed_everything`, `to_device_tensors`,
`DeviceMNIST`, `batches`, `augment`, `make_optimizer`, `train` and `test` into
the notebooks, so these use only `torch`, `nn`, `F`, `optim`, `math`, `os` and the
`torch.utils.data` names every notebook imports, and literals, never module
constants.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn, optim
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, SequentialSampler
from torchvision import transforms

from reference_models.nets import Reference


def seed_everything(seed):
    # one seed for torch's generators, deterministic kernels where torch has them (warn where not);
    # cuBLAS needs a fixed workspace to be deterministic on a GPU
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False
    return torch.Generator(device="cpu").manual_seed(seed)


# the course's normalisation (MNIST mean and std); the notebooks' datasets carry the same transform
NORMALIZE = transforms.Normalize((0.1307,), (0.3081,))


def to_device_tensors(images, labels, normalize, device):
    # uint8 (N, 28, 28) -> normalised float (N, 1, 28, 28) on the device, once: what ToTensor + normalize give per image
    x = normalize(torch.as_tensor(images).unsqueeze(1).float().div(255))
    return x.to(device), torch.as_tensor(labels).long().to(device)


class DeviceMNIST(Dataset):
    # one split as tensors on the device; indexing with a list of indices gives a whole batch
    def __init__(self, x, y, train):
        self.x, self.y, self.train = x, y, train

    def __len__(self):
        return len(self.x)

    def __getitem__(self, indices):
        indices = torch.as_tensor(indices, device=self.x.device)
        return self.x[indices], self.y[indices]


def batches(dataset, batch_size, generator=None):
    # a DataLoader of whole batches (no per-image work, no workers): shuffled with the generator, else in order
    order = RandomSampler(dataset, generator=generator) if generator is not None else SequentialSampler(dataset)
    return DataLoader(dataset, batch_size=None, sampler=BatchSampler(order, batch_size, drop_last=False))


def augment(x, degrees, translate, generator):
    # random rotation (+-degrees) and shift (+-translate pixels) per image, as one batched resampling;
    # the random numbers come from a CPU generator so a seed gives the same images on every device
    n = x.shape[0]
    angle = (torch.rand(n, generator=generator) * 2 - 1) * degrees * math.pi / 180
    shift = (torch.rand(n, 2, generator=generator) * 2 - 1) * translate * 2 / x.shape[-1]  # grid units: [-1, 1]
    cos, sin = angle.cos(), angle.sin()
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta.to(x.device), list(x.shape), align_corners=False)
    # "border" repeats the edge pixels, which are background in MNIST, where "zeros" would paint a frame
    return F.grid_sample(x, grid, padding_mode="border", align_corners=False)


def make_optimizer(model, epochs, steps_per_epoch, max_lr, weight_decay):
    # SGD with Nesterov momentum and a one-cycle learning rate: warm up for a fifth of training, then anneal
    optimizer = optim.SGD(model.parameters(), lr=max_lr / 10, momentum=0.9, nesterov=True, weight_decay=weight_decay)
    scheduler = optim.lr_scheduler.OneCycleLR(optimizer, max_lr=max_lr, epochs=epochs, steps_per_epoch=steps_per_epoch,
                                              pct_start=0.2, div_factor=10, final_div_factor=100)
    return optimizer, scheduler


def train(model, loader, optimizer, scheduler, degrees, translate, generator, max_steps=None):
    # one epoch (or max_steps batches); returns the mean training loss
    model.train()
    total, steps = 0.0, 0
    for inputs, targets in loader:
        if degrees or translate:
            inputs = augment(inputs, degrees, translate, generator)
        loss = F.nll_loss(model(inputs), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        total, steps = total + loss.item(), steps + 1
        if max_steps is not None and steps >= max_steps:
            break
    return total / max(steps, 1)  # a loader with no batches (the grader's dry run) trains nothing


def test(model, loader):
    # the course's test line; returns the accuracy in percent
    model.eval()
    loss, correct, seen = 0.0, 0, len(loader.dataset)
    with torch.no_grad():
        for inputs, targets in loader:
            output = model(inputs)
            loss += F.nll_loss(output, targets, reduction="sum").item()
            correct += (output.argmax(dim=1) == targets).sum().item()
    print(f"Test set: Average loss: {loss / seen:.4f}, Accuracy: {correct}/{seen} ({100.0 * correct / seen:.2f}%)")
    return 100.0 * correct / seen


@dataclass
class Run:
    """One training run of a reference: test accuracy and seconds per epoch."""

    name: str
    seed: int
    params: int
    device: str
    accuracies: list[float] = field(default_factory=list)
    epoch_seconds: list[float] = field(default_factory=list)
    train_losses: list[float] = field(default_factory=list)


def fit(ref: Reference, seed: int, train_set: DeviceMNIST, test_set: DeviceMNIST, *, epochs: int | None = None,
        on_epoch: Callable[[Run], None] | None = None) -> Run:
    """Train `ref` from `seed` as its notebook does, testing after every epoch."""
    epochs = epochs or ref.epochs
    generator = seed_everything(seed)
    device = train_set.x.device
    model: nn.Module = ref.net().to(device)
    train_loader, test_loader = batches(train_set, ref.batch_size, generator), batches(test_set, 1000)
    optimizer, scheduler = make_optimizer(model, epochs, len(train_loader), ref.max_lr, ref.weight_decay)
    run = Run(ref.name, seed, sum(p.numel() for p in model.parameters() if p.requires_grad), str(device))
    for _ in range(epochs):
        started = time.perf_counter()
        run.train_losses.append(train(model, train_loader, optimizer, scheduler, ref.degrees, ref.translate, generator))
        run.accuracies.append(test(model, test_loader))
        if device.type == "cuda":
            torch.cuda.synchronize()
        run.epoch_seconds.append(time.perf_counter() - started)
        if on_epoch:
            on_epoch(run)
    return run
