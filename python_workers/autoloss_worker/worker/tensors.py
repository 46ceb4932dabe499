"""Tensors on the wire: `{dtype, shape, data}` with raw little-endian C-order bytes."""

from __future__ import annotations

from typing import Any

import numpy as np

from .constants import DTYPE_BYTES
from .messages import MessageError, check_tensor

_NUMPY = {"float32": "<f4", "float64": "<f8", "int64": "<i8", "int32": "<i4", "uint8": "u1", "bool": "?"}
# keyed by kind + item size ('f4', 'b1', ...), whatever the byte order
_FROM_NUMPY = {np.dtype(code).str[1:]: name for name, code in _NUMPY.items()}


def tensor_to_numpy(obj: Any) -> np.ndarray:
    """Decodes a wire tensor (read-only view on the message bytes)."""
    check_tensor(obj)
    shape = obj["shape"]
    expected = int(np.prod(shape, dtype=np.int64)) * DTYPE_BYTES[obj["dtype"]]
    if len(obj["data"]) != expected:
        raise MessageError(f"tensor of dtype {obj['dtype']} and shape {shape} needs {expected} bytes, got {len(obj['data'])}")
    return np.frombuffer(obj["data"], dtype=_NUMPY[obj["dtype"]]).reshape(shape)


def numpy_to_tensor(array: np.ndarray) -> dict:
    """Encodes a numpy array; unsupported dtypes raise `TypeError` naming the dtype."""
    array = np.asarray(array)
    dtype = _FROM_NUMPY.get(array.dtype.str[1:])
    if dtype is None:
        raise TypeError(f"cannot send arrays of dtype {array.dtype} (supported: {', '.join(_NUMPY)})")
    data = np.ascontiguousarray(array, dtype=_NUMPY[dtype]).tobytes()
    return {"dtype": dtype, "shape": [int(d) for d in array.shape], "data": data}


def tensor_to_torch(obj: Any, device: str = "cpu"):
    """Decodes a wire tensor into a fresh (writable) torch tensor on `device`."""
    import torch

    return torch.from_numpy(tensor_to_numpy(obj).copy()).to(device)


def torch_to_tensor(t) -> dict:
    return numpy_to_tensor(t.detach().cpu().numpy())
