"""The reference networks, one per shipped rubric, and the settings each is trained with.

Each class is also the network cell of its notebook (`make_notebooks.py` pastes
`inspect.getsource` of the class and of the blocks it uses), so module and notebook
cannot drift. The classes therefore use only `nn` and `F`, names every notebook
imports.

Parameter counts (trainable; `tests/test_reference_models.py` holds them):
S3Net 13,282 - S4Net 10,382 - S5Net 7,644 - SepNet 3,744.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import nn


def conv_block(c_in, c_out, padding=0, dropout=0.0):
    # 3x3 convolution, batch norm, ReLU, then dropout where asked: the course's unit; no bias, batch norm has its own shift
    layers = [nn.Conv2d(c_in, c_out, 3, padding=padding, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]
    return nn.Sequential(*layers, nn.Dropout(dropout)) if dropout else nn.Sequential(*layers)


def separable_block(c_in, c_out, padding=0):
    # a 3x3 per channel (depthwise), then a 1x1 across channels: a 3x3 block for a fraction of the parameters
    return nn.Sequential(nn.Conv2d(c_in, c_in, 3, padding=padding, groups=c_in, bias=False),
                         nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU())


class S3Net(nn.Module):
    # under 20k parameters, 99.4% (mnist-s3): a wider, plainer stack; no dropout, a linear head is allowed here
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            conv_block(1, 8),               # 28 -> 26, RF 3
            conv_block(8, 16),              # 26 -> 24, RF 5
            nn.MaxPool2d(2),                # 24 -> 12, RF 6
            conv_block(16, 16),             # 12 -> 10, RF 10
            conv_block(16, 16),             # 10 -> 8,  RF 14
            conv_block(16, 16),             # 8 -> 6,   RF 18
            conv_block(16, 32, padding=1),  # 6 -> 6,   RF 22
            nn.AdaptiveAvgPool2d(1),        # 6 -> 1: global average
        )
        self.classifier = nn.Linear(32, 10)

    def forward(self, x):
        x = self.features(x).flatten(1)
        return F.log_softmax(self.classifier(x), dim=1)


class S4Net(nn.Module):
    # mnist-s4: batch norm, dropout, a 1x1 transition after the max-pool, GAP, no fully-connected layer
    def __init__(self, dropout=0.05):
        super().__init__()
        self.block1 = nn.Sequential(
            conv_block(1, 10, dropout=dropout),   # 28 -> 26, RF 3
            conv_block(10, 16, dropout=dropout),  # 26 -> 24, RF 5
        )
        self.transition = nn.Sequential(
            nn.MaxPool2d(2),                      # 24 -> 12, RF 6
            nn.Conv2d(16, 10, 1, bias=False),     # 1x1: 16 -> 10 channels
        )
        self.block2 = nn.Sequential(
            conv_block(10, 16, dropout=dropout),  # 12 -> 10, RF 10
            conv_block(16, 16, dropout=dropout),  # 10 -> 8,  RF 14
            conv_block(16, 16, dropout=dropout),  # 8 -> 6,   RF 18
            conv_block(16, 16, padding=1),        # 6 -> 6,   RF 22
        )
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Conv2d(16, 10, 1, bias=False)  # 1x1 to the 10 classes, after GAP

    def forward(self, x):
        x = self.block2(self.transition(self.block1(x)))
        x = self.head(self.gap(x)).flatten(1)
        return F.log_softmax(x, dim=1)


class S5Net(nn.Module):
    # mnist-s5: under 8k parameters, 99.4% within 15 epochs; same habits as S4Net, fewer channels
    def __init__(self, dropout=0.05):
        super().__init__()
        self.block1 = nn.Sequential(
            conv_block(1, 8, dropout=dropout),    # 28 -> 26, RF 3
            conv_block(8, 12, dropout=dropout),   # 26 -> 24, RF 5
        )
        self.transition = nn.Sequential(
            nn.MaxPool2d(2),                      # 24 -> 12, RF 6
            nn.Conv2d(12, 8, 1, bias=False),      # 1x1: 12 -> 8 channels
        )
        self.block2 = nn.Sequential(
            conv_block(8, 10, dropout=dropout),   # 12 -> 10, RF 10
            conv_block(10, 14, dropout=dropout),  # 10 -> 8,  RF 14
            conv_block(14, 16, dropout=dropout),  # 8 -> 6,   RF 18
            conv_block(16, 16, padding=1),        # 6 -> 6,   RF 22
        )
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Conv2d(16, 10, 1, bias=False)

    def forward(self, x):
        x = self.block2(self.transition(self.block1(x)))
        x = self.head(self.gap(x)).flatten(1)
        return F.log_softmax(x, dim=1)


class SepNet(nn.Module):
    # stretch: under 4,000 parameters; after the first layer every 3x3 is depthwise-separable, which buys
    # twice the channels of a plain 3x3 stack, and a second max-pool takes the receptive field past the digit
    def __init__(self):
        super().__init__()
        self.block1 = nn.Sequential(
            conv_block(1, 12),                    # 28 -> 26, RF 3
            separable_block(12, 24),              # 26 -> 24, RF 5
        )
        self.transition = nn.Sequential(
            nn.MaxPool2d(2),                      # 24 -> 12, RF 6
            nn.Conv2d(24, 16, 1, bias=False),     # 1x1: 24 -> 16 channels
        )
        self.block2 = nn.Sequential(
            separable_block(16, 24),              # 12 -> 10, RF 10
            separable_block(24, 24),              # 10 -> 8,  RF 14
        )
        self.pool = nn.MaxPool2d(2)               # 8 -> 4,   RF 16
        self.block3 = separable_block(24, 32, padding=1)  # 4 -> 4, RF 24
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Conv2d(32, 10, 1, bias=False)

    def forward(self, x):
        x = self.block2(self.transition(self.block1(x)))
        x = self.block3(self.pool(x))
        x = self.head(self.gap(x)).flatten(1)
        return F.log_softmax(x, dim=1)


@dataclass(frozen=True)
class Reference:
    """A reference network with the rubric it answers and the recipe that trains it."""

    name: str  # also the notebook's stem: s3 -> reference_models/s3.ipynb
    net: type[nn.Module]
    rubric: str  # rubrics/<rubric>.yaml; "" for the stretch, which has no rubric of its own
    max_params: int  # the rubric's bound (strictly under)
    epochs: int  # epochs the reference trains for
    max_epochs: int | None  # the rubric's budget (None: no bound)
    batch_size: int = 128
    max_lr: float = 0.1  # OneCycleLR peak; SGD with Nesterov momentum 0.9
    weight_decay: float = 0.0
    degrees: float = 7.0  # random rotation, +-degrees
    translate: float = 0.0  # random shift, +-pixels
    needs_gap: bool = True  # rubric habits the tests check through the architecture engine
    needs_transition: bool = True
    needs_batchnorm: bool = True
    needs_dropout: bool = True
    allows_linear: bool = False


REFERENCES: dict[str, Reference] = {r.name: r for r in (
    Reference("s3", S3Net, "mnist-s3", max_params=20_000, epochs=15, max_epochs=None,
              needs_gap=False, needs_transition=False, needs_batchnorm=False, needs_dropout=False, allows_linear=True),
    Reference("s4", S4Net, "mnist-s4", max_params=20_000, epochs=15, max_epochs=20),
    Reference("s5", S5Net, "mnist-s5", max_params=8_000, epochs=15, max_epochs=15),
    Reference("stretch", SepNet, "", max_params=4_000, epochs=15, max_epochs=15, batch_size=64, needs_dropout=False),
)}
