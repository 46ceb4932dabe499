"""Synthetic datasets (seeded, numpy only) and their COCO / MMSegmentation export."""

from .shapes import (
    KEYPOINT_SIGMAS,
    NUM_KEYPOINTS,
    Instance,
    ShapesSplit,
    generate_shapes,
    split_seed,
)

__all__ = ["KEYPOINT_SIGMAS", "NUM_KEYPOINTS", "Instance", "ShapesSplit", "generate_shapes", "split_seed"]
