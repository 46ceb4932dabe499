"""The native pose task's network, on its own so that the pretrained encoder's cache key
(``pretrain.native``) covers this definition and nothing else of the task."""
from __future__ import annotations

from torch import Tensor, nn


class PoseNet(nn.Module):
    """SimpleBaseline in miniature: (N, 3, S, S) -> (N, K, S/4, S/4)."""

    def __init__(self, keypoints: int, width: int = 16) -> None:
        super().__init__()
        w = width

        def conv(cin: int, cout: int, stride: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

        self.encoder = nn.Sequential(*conv(3, w, 2), *conv(w, 2 * w, 2), *conv(2 * w, 4 * w, 2), *conv(4 * w, 4 * w, 1))  # S/8
        self.deconv = nn.Sequential(
            nn.ConvTranspose2d(4 * w, 2 * w, 4, stride=2, padding=1, bias=False), nn.BatchNorm2d(2 * w), nn.ReLU(inplace=True)
        )  # S/4
        self.head = nn.Conv2d(2 * w, keypoints, 1)

    ENCODER = ("encoder",)  # what pretraining trains (pretrain.native)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.deconv(self.encoder(x)))
