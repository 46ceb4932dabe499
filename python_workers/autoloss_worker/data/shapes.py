"""Seeded synthetic "shapes" world: images with semantic labels, instances and keypoints.

A stand-in for PASCAL VOC / COCO that is small, fast and fully deterministic, so the proxy
tasks (segmentation, detection, instance segmentation, pose) can run anywhere.

    from autoloss_worker.data.shapes import generate_shapes, split_seed
    train = generate_shapes(512, split_seed("train", 0))
    train.images     # (n, 3, H, W) float32 in [0, 1]
    train.semantic   # (n, H, W) int64, 0 = background, 1..num_classes
    train.instances  # per image, back-to-front: Instance(category, box, mask, keypoints)

What makes it hard (a small CNN with cross-entropy should stay well below 100% mIoU): small objects
(radius down to 3 px), thin rings and cross arms, class colours that overlap (half the objects get
a uniformly random colour), striped / noisy textures, a cluttered background (thin lines, dots and
small boxes in object-like colours), pixel noise, and objects that occlude each other or leave the
frame.

Keypoints: every class has the same K = 5 keypoints (4 extreme or corner points, then the centre),
so COCOeval's single sigma vector applies. Visibility follows COCO: 2 = visible, 1 = inside the
image but covered by a later (nearer) object, 0 = outside the image (stored as x = y = 0).
"Visible" means "not occluded"; a keypoint may lie just off its own rasterised mask (an extreme point
on a circle) or in a hole (a ring's centre).

Determinism: image i is drawn from `SeedSequence(seed).spawn(n)[i]`, so it depends only on
(seed, i, size, num_classes, max_objects), and `generate_shapes(k, s)` is a prefix of
`generate_shapes(n, s)` for k <= n.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

# ----------------------------------------------------------------------------- constants

NUM_KEYPOINTS = 5  # K, the same for every class (COCOeval uses one sigma vector)

# Per-keypoint OKS sigmas (COCO's person sigmas are 0.025-0.107). Corner/extreme points get 0.10,
# the centre 0.08 (it is better defined). kappa = 2 * sigma as in COCOeval.
KEYPOINT_SIGMAS = np.array([0.10, 0.10, 0.10, 0.10, 0.08], dtype=np.float64)

# Class order defines the category ids 1..num_classes.
SHAPE_KINDS: tuple[str, ...] = ("disc", "square", "triangle", "ring", "cross")

KEYPOINT_NAMES: dict[str, list[str]] = {
    "disc": ["top", "right", "bottom", "left", "centre"],
    "square": ["top_left", "top_right", "bottom_right", "bottom_left", "centre"],
    "triangle": ["apex", "right_vertex", "left_vertex", "base_mid", "centre"],
    "ring": ["top", "right", "bottom", "left", "centre"],
    "cross": ["top_tip", "right_tip", "bottom_tip", "left_tip", "centre"],
}

# COCO skeletons, 1-based keypoint indices: outline (where the class has one) plus spokes to the centre.
SKELETONS: dict[str, list[list[int]]] = {
    "disc": [[1, 5], [2, 5], [3, 5], [4, 5]],
    "square": [[1, 2], [2, 3], [3, 4], [4, 1], [1, 5], [2, 5], [3, 5], [4, 5]],
    "triangle": [[1, 2], [2, 4], [4, 3], [3, 1], [1, 5]],
    "ring": [[1, 5], [2, 5], [3, 5], [4, 5]],
    "cross": [[1, 5], [2, 5], [3, 5], [4, 5]],
}

# Mean RGB per class; only half the objects use it (see OBJECT_COLOUR_RANDOM_P).
CLASS_COLOURS: dict[str, tuple[float, float, float]] = {
    "disc": (0.85, 0.30, 0.25),
    "square": (0.30, 0.75, 0.30),
    "triangle": (0.25, 0.40, 0.85),
    "ring": (0.85, 0.75, 0.20),
    "cross": (0.65, 0.30, 0.75),
}
OBJECT_COLOUR_RANDOM_P = 0.5  # probability an object's colour ignores its class
OBJECT_COLOUR_STD = 0.15  # spread around the class colour

MIN_RADIUS_PX = 3.0  # smallest object radius (circumradius for polygons)
MAX_RADIUS_FRAC = 0.25  # largest radius as a fraction of the image size
MAX_ROTATION_DEG = 30.0  # square/triangle/cross: below their symmetry angle so keypoints stay unambiguous
RING_MIN_THICKNESS_PX = 1.2
CROSS_ARM_HALF_WIDTH_FRAC = (0.18, 0.35)  # arm half-width as a fraction of the radius (>= 0.7 px)

DEFAULT_MAX_OBJECTS = 4
CLUTTER_MAX = 6  # background distractors per image
PIXEL_NOISE_STD = 0.04


# ----------------------------------------------------------------------------- public types


@dataclass(frozen=True)
class Instance:
    """One object after occlusion. `box` is (x0, y0, x1, y1) in pixel-edge coordinates, the tight
    box of the visible `mask` (so x1 = last column + 1). `keypoints` is float32 (K, 3): x, y, v."""

    category: int
    box: tuple[float, float, float, float]
    mask: np.ndarray  # bool (H, W), visible pixels only
    keypoints: np.ndarray  # float32 (K, 3)


@dataclass(frozen=True)
class ShapesSplit:
    images: np.ndarray  # float32 (n, 3, H, W) in [0, 1]
    semantic: np.ndarray  # int64 (n, H, W), 0 = background, 1..num_classes
    instances: list[list[Instance]]  # per image, back-to-front painting order
    keypoint_names: dict[int, list[str]]  # category id -> K names
    category_names: dict[int, str]  # category id -> shape kind
    num_classes: int

    def __len__(self) -> int:
        return int(self.images.shape[0])


def split_seed(name: str, base_seed: int) -> int:
    """A seed for split `name` ("train", "eval", ...) derived from `base_seed`, stable across
    machines and Python runs (unlike `hash()`, which is salted per process)."""
    digest = hashlib.sha256(f"autoloss-shapes:{base_seed}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1  # 63-bit, non-negative


def generate_shapes(
    n: int,
    seed: int,
    size: int = 64,
    num_classes: int = 4,
    max_objects: int = DEFAULT_MAX_OBJECTS,
) -> ShapesSplit:
    """Draw `n` images of `size` x `size` with 1..max_objects objects of `num_classes` kinds."""
    if n < 0:
        raise ValueError(f"generate_shapes: n must be >= 0, got {n}")
    if not 1 <= num_classes <= len(SHAPE_KINDS):
        raise ValueError(f"generate_shapes: num_classes must be in 1..{len(SHAPE_KINDS)}, got {num_classes}")
    if size < 8:
        raise ValueError(f"generate_shapes: size must be >= 8, got {size}")
    if max_objects < 1:
        raise ValueError(f"generate_shapes: max_objects must be >= 1, got {max_objects}")

    kinds = SHAPE_KINDS[:num_classes]
    images = np.empty((n, 3, size, size), dtype=np.float32)
    semantic = np.empty((n, size, size), dtype=np.int64)
    instances: list[list[Instance]] = []
    for i, child in enumerate(np.random.SeedSequence(seed).spawn(n)):
        rng = np.random.default_rng(child)
        images[i], semantic[i], inst = _draw_image(rng, size, kinds, max_objects)
        instances.append(inst)
    return ShapesSplit(
        images=images,
        semantic=semantic,
        instances=instances,
        keypoint_names={c + 1: list(KEYPOINT_NAMES[k]) for c, k in enumerate(kinds)},
        category_names={c + 1: k for c, k in enumerate(kinds)},
        num_classes=num_classes,
    )


# ----------------------------------------------------------------------------- one image


@dataclass(frozen=True)
class _Shape:
    category: int
    full_mask: np.ndarray  # bool (H, W) before occlusion
    keypoints_xy: np.ndarray  # float64 (K, 2), may lie outside the image


def _draw_image(
    rng: np.random.Generator, size: int, kinds: tuple[str, ...], max_objects: int
) -> tuple[np.ndarray, np.ndarray, list[Instance]]:
    # Pixel-centre coordinates: pixel (row r, col c) covers [c, c+1) x [r, r+1).
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64) + 0.5  # (H, W) each
    image = _background(rng, size, xs, ys)  # (3, H, W)

    shapes: list[_Shape] = []
    top = np.full((size, size), -1, dtype=np.int64)  # index of the nearest shape per pixel
    for index in range(int(rng.integers(1, max_objects + 1))):
        class_index = int(rng.integers(len(kinds)))
        shape = _draw_shape(rng, kinds[class_index], class_index + 1, size, xs, ys)
        colour = _object_colour(rng, kinds[class_index])
        texture = _texture(rng, xs, ys)  # (H, W) multiplicative brightness
        appearance = np.clip(colour[:, None, None] * texture[None], 0.0, 1.0)  # (3, H, W)
        image = np.where(shape.full_mask[None], appearance, image)  # later shapes occlude earlier ones
        top[shape.full_mask] = index
        shapes.append(shape)

    image = np.clip(image + rng.normal(0.0, PIXEL_NOISE_STD, image.shape), 0.0, 1.0)

    semantic = np.zeros((size, size), dtype=np.int64)
    instances: list[Instance] = []
    for index, shape in enumerate(shapes):
        mask = top == index
        if not mask.any():  # fully covered by later shapes: nothing to annotate
            continue
        semantic[mask] = shape.category
        instances.append(
            Instance(
                category=shape.category,
                box=_tight_box(mask),
                mask=mask,
                keypoints=_keypoints_with_visibility(shape.keypoints_xy, top, index),
            )
        )
    return image.astype(np.float32), semantic, instances


def _tight_box(mask: np.ndarray) -> tuple[float, float, float, float]:
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    return (float(cols[0]), float(rows[0]), float(cols[-1] + 1), float(rows[-1] + 1))


def _keypoints_with_visibility(xy: np.ndarray, top: np.ndarray, index: int) -> np.ndarray:
    size_y, size_x = top.shape
    out = np.zeros((xy.shape[0], 3), dtype=np.float32)
    for k, (x, y) in enumerate(xy):
        if not (0.0 <= x < size_x and 0.0 <= y < size_y):
            continue  # outside the image: (0, 0, 0) as in COCO
        occluded = top[int(y), int(x)] > index  # a later shape covers this pixel
        out[k] = (x, y, 1.0 if occluded else 2.0)
    return out


# ----------------------------------------------------------------------------- geometry


def _draw_shape(
    rng: np.random.Generator, kind: str, category: int, size: int, xs: np.ndarray, ys: np.ndarray
) -> _Shape:
    # Log-uniform radius favours small objects; the centre may sit near (or on) the border.
    radius = float(np.exp(rng.uniform(np.log(MIN_RADIUS_PX), np.log(max(MIN_RADIUS_PX, MAX_RADIUS_FRAC * size)))))
    cx, cy = rng.uniform(0.0, size, 2)
    rotates = kind in ("square", "triangle", "cross")
    theta = np.deg2rad(rng.uniform(-MAX_ROTATION_DEG, MAX_ROTATION_DEG)) if rotates else 0.0
    cos, sin = np.cos(theta), np.sin(theta)
    # Object frame (u right, v down), rotated by theta.
    dx, dy = xs - cx, ys - cy
    u, v = cos * dx + sin * dy, -sin * dx + cos * dy

    def to_image(points_uv: list[tuple[float, float]]) -> np.ndarray:
        p = np.asarray(points_uv, dtype=np.float64)  # (K, 2)
        return np.stack([cx + cos * p[:, 0] - sin * p[:, 1], cy + sin * p[:, 0] + cos * p[:, 1]], axis=1)

    r = radius
    if kind == "disc":
        mask = u * u + v * v <= r * r
        kp = [(0, -r), (r, 0), (0, r), (-r, 0), (0, 0)]
    elif kind == "ring":
        thickness = rng.uniform(RING_MIN_THICKNESS_PX, max(RING_MIN_THICKNESS_PX, 0.4 * r))
        d2 = u * u + v * v
        mask = (d2 <= r * r) & (d2 >= (r - thickness) ** 2)
        kp = [(0, -r), (r, 0), (0, r), (-r, 0), (0, 0)]
    elif kind == "square":
        h = r / np.sqrt(2.0)  # half side; corners on the circumcircle
        mask = (np.abs(u) <= h) & (np.abs(v) <= h)
        kp = [(-h, -h), (h, -h), (h, h), (-h, h), (0, 0)]
    elif kind == "triangle":
        # Equilateral, apex up, circumradius r, centroid at the centre.
        apex, right, left = (0.0, -r), (r * np.sqrt(3) / 2, r / 2), (-r * np.sqrt(3) / 2, r / 2)
        mask = _inside_triangle(u, v, apex, right, left)
        kp = [apex, right, left, (0.0, r / 2), (0, 0)]
    elif kind == "cross":
        w = max(0.7, r * rng.uniform(*CROSS_ARM_HALF_WIDTH_FRAC))
        mask = ((np.abs(u) <= w) & (np.abs(v) <= r)) | ((np.abs(v) <= w) & (np.abs(u) <= r))
        kp = [(0, -r), (r, 0), (0, r), (-r, 0), (0, 0)]
    else:
        raise ValueError(f"unknown shape kind {kind!r}")
    return _Shape(category=category, full_mask=mask, keypoints_xy=to_image(kp))


def _inside_triangle(u: np.ndarray, v: np.ndarray, a, b, c) -> np.ndarray:
    def side(p, q):  # >= 0 on the inner side of edge p->q for a clockwise (screen) triangle
        return (q[0] - p[0]) * (v - p[1]) - (q[1] - p[1]) * (u - p[0])

    s1, s2, s3 = side(a, b), side(b, c), side(c, a)
    return ((s1 >= 0) & (s2 >= 0) & (s3 >= 0)) | ((s1 <= 0) & (s2 <= 0) & (s3 <= 0))


# ----------------------------------------------------------------------------- appearance


def _object_colour(rng: np.random.Generator, kind: str) -> np.ndarray:
    if rng.random() < OBJECT_COLOUR_RANDOM_P:
        return rng.uniform(0.05, 0.95, 3)
    return np.clip(np.asarray(CLASS_COLOURS[kind]) + rng.normal(0.0, OBJECT_COLOUR_STD, 3), 0.0, 1.0)


def _texture(rng: np.random.Generator, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Multiplicative brightness (H, W): flat, stripes or per-pixel noise."""
    choice = rng.integers(3)
    if choice == 0:
        return np.ones_like(xs)
    if choice == 1:
        angle = rng.uniform(0.0, np.pi)
        freq = rng.uniform(0.5, 1.6)  # rad / px: periods of ~4-12 px
        amp = rng.uniform(0.15, 0.35)
        phase = rng.uniform(0.0, 2 * np.pi)
        return 1.0 + amp * np.sin(freq * (np.cos(angle) * xs + np.sin(angle) * ys) + phase)
    return 1.0 + rng.normal(0.0, rng.uniform(0.05, 0.2), xs.shape)


def _background(rng: np.random.Generator, size: int, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    base = rng.uniform(0.15, 0.85, 3)  # (3,)
    gradient = rng.normal(0.0, 0.25, 2) / size
    ramp = gradient[0] * (xs - size / 2) + gradient[1] * (ys - size / 2)  # (H, W)
    # Low-frequency blotches: an 8x8 noise grid blown up by nearest-neighbour repetition.
    cells = -(-size // 8)
    blotch = np.kron(rng.normal(0.0, 0.06, (3, 8, 8)), np.ones((1, cells, cells)))[:, :size, :size]
    image = base[:, None, None] + ramp[None] + blotch
    for _ in range(int(rng.integers(0, CLUTTER_MAX + 1))):
        image = _paint_clutter(rng, image, size, xs, ys)
    return np.clip(image, 0.0, 1.0)


def _paint_clutter(rng: np.random.Generator, image: np.ndarray, size: int, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Background distractors (label 0): thin lines, dots and small boxes, often in class colours."""
    if rng.random() < 0.5:
        colour = np.asarray(CLASS_COLOURS[SHAPE_KINDS[rng.integers(len(SHAPE_KINDS))]])
    else:
        colour = rng.uniform(0.0, 1.0, 3)
    kind = rng.integers(3)
    if kind == 0:  # line segment, ~1 px wide
        p, q = rng.uniform(0.0, size, 2), rng.uniform(0.0, size, 2)
        mask = _segment_distance(xs, ys, p, q) <= rng.uniform(0.4, 0.8)
    elif kind == 1:  # dot
        cx, cy = rng.uniform(0.0, size, 2)
        mask = (xs - cx) ** 2 + (ys - cy) ** 2 <= rng.uniform(0.8, 2.0) ** 2
    else:  # small axis-aligned box
        x0, y0 = rng.uniform(0.0, size, 2)
        w, h = rng.uniform(1.0, 4.0, 2)
        mask = (xs >= x0) & (xs <= x0 + w) & (ys >= y0) & (ys <= y0 + h)
    return np.where(mask[None], colour[:, None, None], image)


def _segment_distance(xs: np.ndarray, ys: np.ndarray, p: np.ndarray, q: np.ndarray) -> np.ndarray:
    d = q - p
    length2 = float(d @ d) or 1e-12
    t = np.clip(((xs - p[0]) * d[0] + (ys - p[1]) * d[1]) / length2, 0.0, 1.0)
    return np.hypot(xs - (p[0] + t * d[0]), ys - (p[1] + t * d[1]))
