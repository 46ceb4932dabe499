"""The native seg task's network, on its own so that the pretrained encoder's cache key
(``pretrain.native``) covers this definition and nothing else of the task."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _conv(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=dilation, dilation=dilation, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class SegNet(nn.Module):
    """A DeepLabv3+-like miniature: encoder to stride 8 with a dilated context layer, a decoder with
    skips back to stride 2, a 1×1 classifier, and logits upsampled bilinearly to the input size
    (DeepLabv3+ predicts at stride 4 and upsamples the same way). (N, 3, H, W) -> (N, classes, H, W)."""

    def __init__(self, classes: int, width: int = 16) -> None:
        super().__init__()
        w = width
        self.enc1 = _conv(3, w, stride=2)  # H/2
        self.enc2 = _conv(w, 2 * w, stride=2)  # H/4
        self.enc3 = _conv(2 * w, 4 * w, stride=2)  # H/8
        self.context = _conv(4 * w, 4 * w, dilation=2)  # H/8, wider receptive field
        self.dec2 = _conv(4 * w + 2 * w, 2 * w)  # H/4
        self.dec1 = _conv(2 * w + w, w)  # H/2
        self.head = nn.Conv2d(w, classes, 1)

    ENCODER = ("enc1", "enc2", "enc3", "context")  # what pretraining trains (pretrain.native)

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The encoder's feature maps at strides 2, 4 and 8."""
        e1 = self.enc1(x)
        e2 = self.enc2(e1)
        return e1, e2, self.context(self.enc3(e2))

    def forward(self, x: Tensor) -> Tensor:
        e1, e2, e3 = self.encode(x)
        d2 = self.dec2(torch.cat([_resize(e3, e2), e2], 1))
        d1 = self.dec1(torch.cat([_resize(d2, e1), e1], 1))
        return F.interpolate(self.head(d1), size=x.shape[-2:], mode="bilinear", align_corners=False)


def _resize(x: Tensor, like: Tensor) -> Tensor:
    return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)
