"""eval-loss with ``branches``: the search screens a multi-branch loss branch by branch (paper,
App. A.2) and must learn every requested branch's verdict, also after one has failed.

A two-head toy task keeps it fast and hand-checkable: each head classifies 3 classes from its own
logits, every recorded prediction starts on a wrong class, and ξ is the product of the heads'
argmax accuracies (1 at ground truth), so with the other head at ground truth ξ is the tested
head's accuracy: cross-entropy takes it from 0 to 1 (g = 1), its negation keeps it at 0 (g = 0).
"""
from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from autoloss_worker import tasks
from autoloss_worker.task_jobs import eval_loss_job
from autoloss_worker.tasks.base import Sample, Task

CE = ["neg", ["mul", "y", ["log", "y_hat"]]]
NEG_CE = ["mul", "y", ["log", "y_hat"]]
CLASSES = 3


def branch(name: str, tree: Any) -> dict[str, Any]:
    return {"name": name, "kind": "dense", "inputs": ["y_hat", "y", "one"], "tree": tree}


def loss(a: Any, b: Any) -> dict[str, Any]:
    return {"v": 1, "branches": [branch("a", a), branch("b", b)]}


class TwoHeads(Task):
    name = "two-heads"
    branches = {"a": "dense", "b": "dense"}
    metrics = ("acc",)
    default_metric = "acc"
    baseline_loss = loss(CE, CE)

    def __init__(self, **options: Any) -> None:
        self.options = options

    def build_model(self, seed: int) -> nn.Module:
        return nn.Identity()

    def rejection_samples(self, B: int, seed: int) -> list[Sample]:
        g = torch.Generator().manual_seed(seed)
        out = []
        for _ in range(B):
            labels = {h: int(torch.randint(0, CLASSES, (1,), generator=g)) for h in self.branches}
            # logits favour the next class: every head starts wrong
            raw = {h: 0.5 * nn.functional.one_hot(torch.tensor([(y + 1) % CLASSES]), CLASSES).double()
                   for h, y in labels.items()}
            out.append(Sample(raw=raw, target=labels))
        return out

    def to_loss_inputs(self, branch: str, raw: torch.Tensor, target: Any, *, metric: str) -> dict[str, torch.Tensor]:
        y = nn.functional.one_hot(torch.tensor([target[branch]]), CLASSES).to(raw.dtype)
        return {"y_hat": raw.softmax(dim=1)[:, :, None, None], "y": y[:, :, None, None]}

    def sample_metric(self, raw: Any, target: Any, metric: str) -> float:
        acc = 1.0
        for h in self.branches:
            acc *= float(int(raw[h].argmax(dim=1)) == target[h])
        return acc

    def ground_truth_raw(self, branch: str, target: Any) -> torch.Tensor:
        return 10.0 * nn.functional.one_hot(torch.tensor([target[branch]]), CLASSES).double()

    def proxy_train(self, loss: Any, seed: int, *, metric: str, budget: int | None = None, progress: Any = None) -> Any:
        raise NotImplementedError


@pytest.fixture(autouse=True)
def two_heads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(tasks.TASKS, "two-heads", TwoHeads)


def job(graph: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return eval_loss_job({"task": "two-heads", "loss": graph, "seed": 0, "options": {}, **extra})


def test_each_requested_branch_gets_its_own_verdict_even_after_a_failure():
    r = job(loss(NEG_CE, CE), branches=["a", "b"])
    a, b = r["branches"]["a"], r["branches"]["b"]
    assert (a["passed"], a["score"]) == (False, 0.0)
    assert (b["passed"], b["score"]) == (True, 1.0)  # checked although 'a' failed first
    assert r["passed"] is False and r["score"] == 0.0
    assert r["gradNorms"] == a["gradNorms"] + b["gradNorms"]  # branch-major, B = 5 each
    assert len(a["gradNorms"]) == len(b["gradNorms"]) == 5


def test_a_branch_verdict_does_not_depend_on_the_other_branch():
    # the other branch is at ground truth while one is checked, so its loss is irrelevant
    alone = job(loss(CE, NEG_CE), branches=["a"])["branches"]["a"]
    paired = job(loss(CE, CE), branches=["a"])["branches"]["a"]
    assert alone == paired
    assert alone["passed"] is True


def test_only_the_requested_branches_are_checked():
    r = job(loss(NEG_CE, CE), branches=["b"])
    assert list(r["branches"]) == ["b"]
    assert r["passed"] is True


def test_without_branches_a_multi_branch_loss_stops_at_its_first_failure():
    r = job(loss(NEG_CE, CE))
    assert list(r["branches"]) == ["a"]
    assert r["passed"] is False


@pytest.mark.parametrize("bad, message", [
    (["c"], "names c, not branches of task 'two-heads'"),
    ([], "non-empty list"),
    (["a", "a"], "lists a branch twice"),
    ("a", "non-empty list"),
])
def test_bad_branch_lists_are_refused_naming_the_problem(bad: Any, message: str):
    with pytest.raises(ValueError, match=message):
        job(loss(CE, CE), branches=bad)


def test_a_requested_branch_can_be_checked_from_a_loss_holding_only_that_branch():
    # `autoloss eval-loss --task det --branch rcnn_cls --loss "<expr>"`: the other branches are at
    # ground truth, so the loss needs only the checked one
    alone = job({"v": 1, "branches": [branch("b", CE)]}, branches=["b"])
    assert alone["branches"]["b"] == job(loss(NEG_CE, CE), branches=["b"])["branches"]["b"]
    with pytest.raises(ValueError, match="lacks a"):
        job({"v": 1, "branches": [branch("b", CE)]}, branches=["a"])
    with pytest.raises(ValueError, match="takes branches a \\(dense\\), b \\(dense\\); the loss has c \\(dense\\)"):
        job({"v": 1, "branches": [branch("b", CE), branch("c", CE)]}, branches=["b"])
