"""The network: 3x3 blocks (batch norm, light dropout), max-pool + 1x1 transition, GAP: 7,210 parameters."""
import torch.nn as nn
import torch.nn.functional as F


def conv_block(cin, cout, dropout=0.05):
    """3x3 convolution (no padding) -> ReLU -> batch norm -> dropout"""
    return nn.Sequential(nn.Conv2d(cin, cout, 3, bias=False), nn.ReLU(), nn.BatchNorm2d(cout), nn.Dropout(dropout))


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.block1 = nn.Sequential(conv_block(1, 10), conv_block(10, 14))                       # 28 -> 24, RF 5
        self.trans1 = nn.Sequential(nn.MaxPool2d(2), nn.Conv2d(14, 10, 1, bias=False))           # 12, RF 6
        self.block2 = nn.Sequential(conv_block(10, 12), conv_block(12, 16), conv_block(16, 18))  # 12 -> 6, RF 18
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Conv2d(18, 10, 1, bias=False)  # 1x1 to ten classes instead of a Linear layer

    def forward(self, x):
        x = self.block2(self.trans1(self.block1(x)))
        return F.log_softmax(self.head(self.gap(x)).view(-1, 10), dim=-1)
