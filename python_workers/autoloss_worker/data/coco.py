"""Export a ShapesSplit as a COCO dataset (instances + keypoints) and MMSegmentation label maps.

    from autoloss_worker.data.coco import to_coco, write_coco
    gt = to_coco(split)                       # dict, loadable with pycocotools.coco.COCO
    write_coco(split, "runs/data", "train")   # train.json, train/000001.png, train_seg/000001.png

Conventions: bbox is [x, y, w, h] of the visible mask; area is the visible mask's pixel count;
segmentation is compressed RLE (counts as str, so the dict is JSON-serialisable); keypoints are
flat [x, y, v] * K with (0, 0, 0) for keypoints outside the image; num_keypoints counts v > 0.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from .shapes import SKELETONS, ShapesSplit


def image_file_name(image_id: int) -> str:
    return f"{image_id:06d}.png"


def to_coco(split: ShapesSplit, image_ids_start: int = 1) -> dict:
    """COCO dict for `split`; image i gets id image_ids_start + i, annotation ids start at 1."""
    n, _, height, width = split.images.shape
    images, annotations = [], []
    annotation_id = 1
    for i in range(n):
        image_id = image_ids_start + i
        images.append({"id": image_id, "file_name": image_file_name(image_id), "width": width, "height": height})
        for inst in split.instances[i]:
            rle = mask_utils.encode(np.asfortranarray(inst.mask.astype(np.uint8)))
            rle["counts"] = rle["counts"].decode("ascii")
            x0, y0, x1, y1 = inst.box
            kpts = inst.keypoints  # (K, 3)
            annotations.append(
                {
                    "id": annotation_id,
                    "image_id": image_id,
                    "category_id": int(inst.category),
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                    "area": float(inst.mask.sum()),
                    "iscrowd": 0,
                    "segmentation": rle,
                    "keypoints": [float(v) for v in kpts.reshape(-1)],
                    "num_keypoints": int((kpts[:, 2] > 0).sum()),
                }
            )
            annotation_id += 1
    categories = [
        {
            "id": cat_id,
            "name": name,
            "supercategory": "shape",
            "keypoints": list(split.keypoint_names[cat_id]),
            "skeleton": [list(edge) for edge in SKELETONS[name]],
        }
        for cat_id, name in sorted(split.category_names.items())
    ]
    return {
        "info": {"description": "autoloss synthetic shapes"},
        "images": images,
        "annotations": annotations,
        "categories": categories,
    }


def write_coco(split: ShapesSplit, out_dir: str | Path, name: str, image_ids_start: int = 1) -> Path:
    """Write out_dir/<name>.json, RGB PNGs under out_dir/<name>/ and uint8 label PNGs (0 = background,
    values = category ids, for MMSegmentation) under out_dir/<name>_seg/. Returns the JSON path."""
    out = Path(out_dir)
    image_dir, seg_dir = out / name, out / f"{name}_seg"
    image_dir.mkdir(parents=True, exist_ok=True)
    seg_dir.mkdir(parents=True, exist_ok=True)
    if split.semantic.size and int(split.semantic.max()) > 255:
        raise ValueError("write_coco: label ids above 255 do not fit a uint8 PNG")

    coco = to_coco(split, image_ids_start)
    for i, entry in enumerate(coco["images"]):
        rgb = np.round(split.images[i].transpose(1, 2, 0) * 255.0).astype(np.uint8)  # (H, W, 3)
        Image.fromarray(rgb).save(image_dir / entry["file_name"])
        Image.fromarray(split.semantic[i].astype(np.uint8)).save(seg_dir / entry["file_name"])
    json_path = out / f"{name}.json"
    json_path.write_text(json.dumps(coco))
    return json_path
