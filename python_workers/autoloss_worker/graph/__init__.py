"""Loss graphs on the Python side: decode and validate the wire form, interpret it with torch.

    from autoloss_worker.graph import decode_loss, compile_branch, branch_value
    graph = decode_loss(payload)                          # GraphError on anything invalid
    fns = {b.name: compile_branch(b) for b in graph.branches}
    loss = branch_value(fns["loss"]({"y_hat": p, "y": t}))
"""

from .interpreter import branch_value, compile_branch
from .ops import ARITY, EPSILON, OP_NAMES
from .tree import BOX_INPUTS, DENSE_INPUTS, Branch, LossGraph, OpNode, Tree, depth_of, size_of, to_text
from .validate import DEFAULT_LIMITS, GraphError, Limits, validate_loss
from .wire import GRAPH_WIRE_VERSION, decode_loss, loss_from_wire, loss_to_wire

__all__ = [
    "ARITY",
    "BOX_INPUTS",
    "DEFAULT_LIMITS",
    "DENSE_INPUTS",
    "EPSILON",
    "GRAPH_WIRE_VERSION",
    "OP_NAMES",
    "Branch",
    "GraphError",
    "Limits",
    "LossGraph",
    "OpNode",
    "Tree",
    "branch_value",
    "compile_branch",
    "decode_loss",
    "depth_of",
    "loss_from_wire",
    "loss_to_wire",
    "size_of",
    "to_text",
    "validate_loss",
]
