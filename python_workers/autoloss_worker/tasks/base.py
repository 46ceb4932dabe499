"""The task interface: what the rejection protocol and proxy training need from a vision task.

A task owns its data (generated or loaded once per process and cached, so a long-lived worker
serves many jobs), its small proxy model, how raw network outputs become loss inputs, and its
metrics. Loss candidates arrive as ``branch name -> BranchLoss`` (see ``losses.py``).

Lifecycle, for one worker process:

* ``get_task(name, **options)`` builds the task (cheap; data is generated lazily and cached).
* Rejection (``fastreject``): ``rejection_samples`` once per seed, then for every optimisation
  step the loss inputs of the current raw predictions (``to_loss_inputs``, or
  ``joint_loss_inputs`` for all B samples at once), and ``sample_metric`` before and after
  optimisation (and at early-reject checkpoints).
* Proxy training (``proxy_train``): called once per candidate that passed rejection.

Everything here works on CPU; ``device`` is an option of the concrete tasks.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from autoloss_worker.tasks.losses import BranchLoss, as_branch_losses
from autoloss_worker.tasks.train_state import Continuation

# Branch kinds a task may declare (mirror of src/graph/types.ts).
DENSE = "dense"
BOX = "box"


@dataclass(frozen=True)
class Sample:
    """One recorded rejection sample.

    ``raw``: branch name -> the raw network output for this sample alone, batch dimension 1
    (seg: logits (1, C, H, W); pose: heatmaps (1, K, h, w)).
    ``target``: whatever the task needs to build loss inputs and score the sample.
    """

    raw: Mapping[str, Tensor]
    target: Any


@dataclass
class TrainResult:
    """Outcome of one proxy training run; metrics are on a 0-1 scale.

    ``iterations`` counts the optimisation steps whose loss was evaluated; when ``invalid`` the
    last of them produced a non-finite loss (or gradient) and training stopped right there, and
    every metric is 0.0 (the worst score) because the network was never finished.
    """

    metrics: dict[str, float]
    target: float
    invalid: bool
    iterations: int
    extra: dict[str, Any] = field(default_factory=dict)
    #: the cached step this training continued from (``stop_at`` with a state cache), else None
    resumed_from: int | None = None


class Task(ABC):
    """A vision task with a proxy training recipe and per-sample metrics.

    Subclasses set the class attributes and implement the abstract methods. ``metric`` arguments
    are names from ``metrics``; a task may use a different training target per metric (seg trains
    boundary metrics against boundary maps, as in the paper), which is why ``to_loss_inputs`` and
    ``proxy_train`` take it.
    """

    name: str
    #: branch name -> branch kind (``dense`` or ``box``), in the order of the loss graph.
    branches: Mapping[str, str]
    #: metric names this task reports, all on a 0-1 scale, higher is better.
    metrics: Sequence[str]
    default_metric: str
    #: the hand-designed baseline loss as a wire-form graph (``protocol/README.md``).
    baseline_loss: Mapping[str, Any]

    # Capabilities the rejection protocol relies on, declared here rather than probed:
    #: Every sample's raw prediction of a branch has one shape, so the protocol stacks the B samples
    #: of K candidates into one (K, B, ...) tensor and may use the vectorised engines (``closed``,
    #: ``levels``). False (det: anchors and RoIs per image vary): B tensors (K, 1, ...), engine ``tree``.
    stackable_samples: bool = True
    #: The (single) dense branch's loss inputs are exactly ``y_hat = softmax(raw, dim=1)`` and
    #: ``y = target.y[metric]`` (seg): engine ``closed`` then builds them for all rows without
    #: autograd and pulls adjoints back with the softmax kernel. The contract suite checks the claim.
    softmax_dense_inputs: bool = False
    #: Metrics (among ``miou``, ``fwiou``, ``gacc``, ``macc``) whose ξ is a function of the confusion
    #: matrix of ``argmax(raw, dim=1)`` against ``target.labels`` over ``raw.shape[1]`` classes (seg's
    #: region metrics): the protocol scores all rows with one ``bincount`` (``fastreject/metrics.py``).
    confusion_metrics: frozenset[str] = frozenset()
    #: ``proxy_train`` continues from a cached lower-rung state (``states``); False: every
    #: ``stop_at`` job trains from step 0 (it still stops early on the full schedule).
    continues: bool = False
    # Multi-branch: a task with more than one entry in ``branches`` implements ``ground_truth_raw``
    # (the protocol sets the branches not being checked to it); a single-branch task need not.

    def data_seed(self) -> int | None:
        """The seed the task's training data is drawn from, which a held-out training replaces with
        the task option ``data_seed``; None when the data is not drawn from a seed (a data set on disk)."""
        seed = getattr(getattr(self, "options", None), "data_seed", None)
        return seed if isinstance(seed, int) else None

    def check_metric(self, metric: str | None) -> str:
        """Resolve ``None`` to the default metric; raise ``ValueError`` naming the choices."""
        metric = self.default_metric if metric is None else metric
        if metric not in self.metrics:
            raise ValueError(f"task '{self.name}' has no metric '{metric}' (known: {', '.join(self.metrics)})")
        return metric

    def branch_losses(self, loss: Any) -> dict[str, BranchLoss]:
        """``loss`` (a LossGraph or ``{branch: BranchLoss | callable}``) as one ``BranchLoss`` per
        branch of this task; raises ``ValueError`` naming missing or unknown branches."""
        losses = as_branch_losses(loss)
        missing = [b for b in self.branches if b not in losses]
        unknown = [b for b in losses if b not in self.branches]
        if missing or unknown:
            raise ValueError(
                f"loss branches {sorted(losses)} do not match task '{self.name}' branches {list(self.branches)}"
                + (f" (missing: {', '.join(missing)})" if missing else "")
                + (f" (unknown: {', '.join(unknown)})" if unknown else "")
            )
        return losses

    @abstractmethod
    def build_model(self, seed: int) -> nn.Module:
        """A freshly initialised proxy network; called by proxy training and by rejection sampling."""

    @abstractmethod
    def rejection_samples(self, B: int, seed: int) -> list[Sample]:
        """B random training samples with the raw predictions of a network initialised from
        ``seed`` (in eval mode). Called once per (B, seed); implementations cache the result."""

    @abstractmethod
    def to_loss_inputs(self, branch: str, raw: Tensor, target: Any, *, metric: str) -> dict[str, Tensor]:
        """Loss inputs of ``branch`` for raw predictions ``raw`` (N, ...) and their target.

        Returns ``y_hat`` and ``y`` of shape (N, C, H, W) (``one`` may be omitted) and optionally a
        ``WEIGHT_KEY`` tensor broadcastable to it. Must be differentiable in ``raw``: rejection
        calls it at every optimisation step.
        """

    def joint_loss_inputs(self, branch: str, preds: Sequence[Tensor], samples: Sequence[Sample], *,
                          metric: str) -> dict[str, Tensor]:
        """``to_loss_inputs`` of every sample (``preds[b]`` the raw prediction of ``samples[b]``)
        concatenated along N: the rejection objective of a loss that keeps samples apart. A task may
        build them in one go (one autograd graph instead of B); the values must be these."""
        per_sample = [self.to_loss_inputs(branch, p, s.target, metric=metric) for p, s in zip(preds, samples)]
        return {key: torch.cat([inputs[key] for inputs in per_sample]) for key in per_sample[0]}

    @abstractmethod
    def sample_metric(self, raw: Mapping[str, Tensor], target: Any, metric: str) -> float:
        """ξ(ŷ, y) of one sample, 0-1, from the raw predictions of all branches (batch dimension 1)."""

    @abstractmethod
    def proxy_train(
        self,
        loss: Any,
        seed: int,
        *,
        metric: str,
        budget: int | None = None,
        progress: Callable[[float], None] | None = None,
        stop_at: int | None = None,
        states: Continuation | None = None,
    ) -> TrainResult:
        """Train a network initialised from ``seed`` with ``loss`` (a LossGraph or branch losses)
        for ``budget`` iterations (None: the task's default) and evaluate every metric on the eval
        split. Stops at the first non-finite loss or gradient. ``progress`` gets the done fraction.

        ``stop_at`` k: the same schedule (over ``budget`` steps), stopped and evaluated after step k.
        ``states``: where a task that ``continues`` resumes from and keeps its state at k."""

    def ground_truth_raw(self, branch: str, target: Any) -> Tensor:
        """A raw prediction of ``branch`` equal to the ground truth. Multi-branch tasks implement it:
        while one branch is checked for rejection, the others are set to it (paper, App. A.2)."""
        raise NotImplementedError(f"task '{self.name}' has one branch and no ground-truth predictions")


class PretrainableTask(Task):
    """A native task whose network's encoder may start from the shapes-pretrained checkpoint
    (option ``pretrained``, ``pretrain.native``). Rejection samples come from ``random_model``
    either way, as the paper's protocol (and the MMLab tasks' ``rejection_config``) has it:
    pretraining changes where proxy training starts, not what the protocol sees."""

    @abstractmethod
    def random_model(self, seed: int) -> nn.Module:
        """The network initialised from ``seed`` alone."""

    @abstractmethod
    def encoder_spec(self) -> Any:
        """The ``pretrain.native.NativeSpec`` of the network's encoder."""

    def build_model(self, seed: int) -> nn.Module:
        model = self.random_model(seed)
        if self.options.pretrained:  # type: ignore[attr-defined]
            from autoloss_worker.pretrain.native import load_encoder  # lazily: torch-only runs stay light

            load_encoder(model, self.encoder_spec())
        return model
