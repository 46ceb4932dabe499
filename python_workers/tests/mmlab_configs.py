"""Shared by the tests of the MMLab tasks on any config: configs derived from a shipped one, and
loss graphs with one dense branch per name."""
from __future__ import annotations

from pathlib import Path


def derived_configs(root: Path, shipped: str, texts: dict[str, str]) -> dict[str, str]:
    """{"shipped": shipped, name: path of `_base_ = [shipped]` + text written under root}."""
    paths = {"shipped": shipped}
    for name, text in texts.items():
        path = root / f"{name}.py"
        path.write_text(f"_base_ = [{shipped!r}]\n{text}")
        paths[name] = str(path)
    return paths


def dense_wire(trees: dict[str, object]) -> dict:
    """The wire form of a loss with one dense branch per name (inputs y_hat, y, one)."""
    return {"v": 1, "branches": [{"name": n, "kind": "dense", "inputs": ["y_hat", "y", "one"], "tree": t}
                                 for n, t in trees.items()]}
