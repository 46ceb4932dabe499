"""The ``closed`` engine of ``batched.run_batch``: K candidates' objectives and their gradients
w.r.t. the loss inputs from ``gradient.TreeGradient``, without autograd (the CPU path).

    engine = ClosedForm(trees, variables={"y_hat"}, constants={"y": y, "one": one})  # (B, C, H, W) each
    values, adjoints = engine.step(rows, {"y_hat": y_hat})   # y_hat: (Ka, B, C, H, W), rows: Ka candidates
    # values (Ka,) = Σ o per candidate; adjoints["y_hat"] (Ka, B, C, H, W) = ∂(Σ o)/∂y_hat

The caller maps the adjoints back to the raw predictions (seg: softmax backward).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence, Set

import torch
from torch import Tensor

from autoloss_worker.graph import Tree

from .gradient import BoundGradient, TreeGradient


class ClosedForm:
    def __init__(self, trees: Sequence[Tree], variables: Set[str], constants: Mapping[str, Tensor]) -> None:
        self.variables = tuple(sorted(variables))
        # Constant subtrees are evaluated here, once per candidate for the whole run.
        self.programs: list[BoundGradient] = [TreeGradient(t, variables).bind(constants) for t in trees]

    def step(self, rows: Sequence[int], inputs: Mapping[str, Tensor],
             seed: Tensor | None = None) -> tuple[Tensor, dict[str, Tensor]]:
        """Σ (o · seed) and its input adjoints for candidates ``rows`` (row j of every input is
        candidate rows[j]); ``seed``: the task's weight stacked like the inputs, or None."""
        columns = {key: inputs[key].unbind(0) for key in self.variables}
        seeds = seed.unbind(0) if seed is not None else None
        values: list[Tensor] = []
        adjoints: dict[str, list[Tensor]] = {key: [] for key in self.variables}
        zeros: dict[str, Tensor] = {}
        with torch.no_grad():
            for j, k in enumerate(rows):
                value, grads = self.programs[k]({key: c[j] for key, c in columns.items()},
                                                None if seeds is None else seeds[j])
                values.append(value)
                for key in self.variables:
                    g = grads.get(key)
                    if g is None:  # the tree does not read this input: ∂/∂input = 0
                        g = zeros.get(key)
                        if g is None:
                            g = zeros[key] = torch.zeros_like(columns[key][j])
                    adjoints[key].append(g)
            if len(rows) == 1:  # a view, not a copy (the search screens one loss per job)
                return values[0].unsqueeze(0), {key: a[0].unsqueeze(0) for key, a in adjoints.items()}
            return torch.stack(values), {key: torch.stack(a) for key, a in adjoints.items()}
