"""My network: 3x3 blocks (batch norm, a little dropout), max-pool + 1x1 transition, GAP: 6,544 parameters."""
import torch.nn as nn
import torch.nn.functional as F


class Net(nn.Module):
    def __init__(self):
        super().__init__()

        def block(cin, cout):  # conv 3x3 -> batch norm -> ReLU -> dropout
            return nn.Sequential(nn.Conv2d(cin, cout, 3, bias=False), nn.BatchNorm2d(cout), nn.ReLU(), nn.Dropout(0.05))

        self.convblock1 = block(1, 8)                  # 28 -> 26, RF 3
        self.convblock2 = block(8, 16)                 # 26 -> 24, RF 5
        self.pool = nn.MaxPool2d(2)                    # 24 -> 12, RF 6
        self.trans = nn.Conv2d(16, 8, 1, bias=False)   # transition: 16 -> 8 channels
        self.convblock3 = block(8, 12)                 # 12 -> 10, RF 10
        self.convblock4 = block(12, 16)                # 10 -> 8, RF 14
        self.convblock5 = block(16, 16)                # 8 -> 6, RF 18
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.out = nn.Conv2d(16, 10, 1, bias=False)    # ten classes, no Linear layer

    def forward(self, x):
        x = self.trans(self.pool(self.convblock2(self.convblock1(x))))
        x = self.convblock5(self.convblock4(self.convblock3(x)))
        return F.log_softmax(self.out(self.gap(x)).view(-1, 10), dim=-1)
