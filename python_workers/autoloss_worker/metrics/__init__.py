"""Task metrics on a 0-1 scale: semantic segmentation (mIoU ... BF1) and COCO keypoint mAP / OKS."""

from .keypoints import keypoint_map, oks
from .segmentation import boundaries, confusion_matrix, segmentation_metrics

__all__ = ["boundaries", "confusion_matrix", "keypoint_map", "oks", "segmentation_metrics"]
