"""The det / ins rejection records on synthetic images (no MMDetection needed): each record type
builds its loss inputs alike one by one, stacked and jointly, scores ξ = 1 at its ground truth,
and knows when it is usable."""
from __future__ import annotations

import pytest
import torch

from autoloss_worker.mmlab.det_records import BoxRecord, ClsRecord, DetRecord, MaskRecord, Record


def records(seed: int) -> dict[str, Record]:
    g = torch.Generator().manual_seed(seed)
    n, p = 12 + seed, 4 + seed
    labels = torch.randint(0, 5, (n,), generator=g)
    labels[0] = 1  # a foreground sample
    xy = torch.rand(p, 2, generator=g, dtype=torch.float64) * 50
    targets = torch.cat([xy, xy + 10 + torch.rand(p, 2, generator=g, dtype=torch.float64) * 20], 1)
    masks = (torch.rand(p, 7, 7, generator=g, dtype=torch.float64) < 0.5).double()
    masks[:, 0, 0], masks[:, 6, 6] = 1.0, 0.0  # some but not all of each RoI
    return {
        "cls": ClsRecord(logits=torch.randn(n, 5, generator=g, dtype=torch.float64), labels=labels,
                         others=torch.randn(3, 5, generator=g, dtype=torch.float64)),
        "box": BoxRecord(offsets=0.05 * torch.randn(p, 4, generator=g, dtype=torch.float64),
                         priors=targets + 3 * torch.randn(p, 4, generator=g, dtype=torch.float64), targets=targets),
        "mask": MaskRecord(logits=torch.randn(p, 7, 7, generator=g, dtype=torch.float64), targets=masks),
    }


@pytest.mark.parametrize("kind", ["cls", "box", "mask"])
def test_a_record_scores_one_at_its_ground_truth_and_less_as_recorded(kind: str):
    r = records(0)[kind]
    assert r.ground_truth().shape == (1, *r.leaf.shape)
    assert r.factor(r.ground_truth()[0]) == pytest.approx(1.0, abs=1e-4)
    assert 0.0 <= r.factor(r.leaf) < 0.9


@pytest.mark.parametrize("kind", ["cls", "box", "mask"])
def test_loss_inputs_alike_one_by_one_stacked_and_jointly(kind: str):
    a, b = records(0)[kind], records(1)[kind]
    one_a, one_b = a.loss_inputs(a.leaf[None]), b.loss_inputs(b.leaf[None])
    joint = type(a).joint_loss_inputs([a, b], [a.leaf[None], b.leaf[None]])
    stacked = a.loss_inputs(torch.stack([a.leaf, 2 * a.leaf]))  # two predictions of one image
    twice = a.loss_inputs((2 * a.leaf)[None])
    for key in one_a:
        assert torch.allclose(joint[key], torch.cat([one_a[key], one_b[key]]), rtol=1e-12, atol=0)
        assert torch.allclose(stacked[key], torch.cat([one_a[key], twice[key]]), rtol=1e-12, atol=0)


def test_a_record_without_foreground_or_positives_is_not_usable():
    r = records(0)
    assert DetRecord(0, r).usable()
    background = ClsRecord(logits=r["cls"].logits, labels=torch.full_like(r["cls"].labels, 4), others=r["cls"].others)
    empty_box = BoxRecord(*(t[:0] for t in (r["box"].offsets, r["box"].priors, r["box"].targets)))
    assert not DetRecord(0, {**r, "cls": background}).usable()
    assert not DetRecord(0, {**r, "box": empty_box}).usable()
    assert all(isinstance(x.as_double().leaf, torch.Tensor) and x.as_double().leaf.dtype == torch.float64 for x in r.values())
