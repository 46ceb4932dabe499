"""Synthetic shapes world: determinism, array contracts and the occlusion invariants."""

import time

import numpy as np
import pytest

from autoloss_worker.data.shapes import (
    CLASS_COLOURS,
    KEYPOINT_SIGMAS,
    NUM_KEYPOINTS,
    SHAPE_KINDS,
    generate_shapes,
    split_seed,
)


@pytest.fixture(scope="module")
def split():
    return generate_shapes(96, seed=7)


def _same_split(a, b):
    assert np.array_equal(a.images, b.images)
    assert np.array_equal(a.semantic, b.semantic)
    assert len(a.instances) == len(b.instances)
    for ia, ib in zip(a.instances, b.instances):
        assert [x.category for x in ia] == [x.category for x in ib]
        assert [x.box for x in ia] == [x.box for x in ib]
        for x, y in zip(ia, ib):
            assert np.array_equal(x.mask, y.mask)
            assert np.array_equal(x.keypoints, y.keypoints)


def test_same_seed_same_data_and_prefix_stable():
    a, b = generate_shapes(12, seed=3), generate_shapes(12, seed=3)
    _same_split(a, b)
    prefix = generate_shapes(5, seed=3)  # image i depends on (seed, i) only
    assert np.array_equal(prefix.images, a.images[:5])
    assert np.array_equal(prefix.semantic, a.semantic[:5])


def test_different_seeds_differ():
    a, b = generate_shapes(4, seed=3), generate_shapes(4, seed=4)
    assert not np.array_equal(a.images, b.images)
    assert not np.array_equal(a.semantic, b.semantic)


def test_split_seed_is_stable_and_separates_splits():
    assert split_seed("train", 0) == split_seed("train", 0)
    seeds = {split_seed(name, base) for name in ("train", "eval") for base in (0, 1)}
    assert len(seeds) == 4
    assert all(0 <= s < 2**63 for s in seeds)
    # Pinned: a change here silently changes every dataset drawn from a base seed.
    assert split_seed("train", 0) == 8283934725859700999


def test_arrays_shapes_dtypes_ranges(split):
    n = len(split)
    assert split.images.shape == (n, 3, 64, 64) and split.images.dtype == np.float32
    assert split.images.min() >= 0.0 and split.images.max() <= 1.0
    assert split.semantic.shape == (n, 64, 64) and split.semantic.dtype == np.int64
    assert set(np.unique(split.semantic)) <= set(range(split.num_classes + 1))
    assert set(np.unique(split.semantic)) == set(range(5))  # every class occurs in 96 images
    assert split.category_names == {1: "disc", 2: "square", 3: "triangle", 4: "ring"}
    assert all(len(names) == NUM_KEYPOINTS for names in split.keypoint_names.values())
    assert KEYPOINT_SIGMAS.shape == (NUM_KEYPOINTS,)
    assert all(1 <= len(inst) <= 4 for inst in split.instances)


def test_size_and_num_classes_options():
    s = generate_shapes(6, seed=1, size=32, num_classes=5, max_objects=6)
    assert s.images.shape == (6, 3, 32, 32) and s.num_classes == 5
    assert s.category_names[5] == "cross"
    with pytest.raises(ValueError, match="num_classes"):
        generate_shapes(1, 0, num_classes=len(SHAPE_KINDS) + 1)


def test_semantic_is_category_of_topmost_instance(split):
    for sem, instances in zip(split.semantic, split.instances):
        covered = np.zeros(sem.shape, dtype=np.int64)
        for inst in instances:
            assert inst.mask.dtype == bool and inst.mask.any()
            covered += inst.mask
            assert np.all(sem[inst.mask] == inst.category)
        assert covered.max() <= 1, "visible masks must be disjoint (occlusion removes covered pixels)"
        assert np.array_equal(sem == 0, covered == 0)


def test_boxes_are_tight_boxes_of_masks(split):
    for instances in split.instances:
        for inst in instances:
            rows, cols = np.nonzero(inst.mask)
            assert inst.box == (cols.min(), rows.min(), cols.max() + 1.0, rows.max() + 1.0)


def test_keypoint_visibility_matches_occlusion(split):
    seen = {0: 0, 1: 0, 2: 0}
    for instances in split.instances:
        for i, inst in enumerate(instances):
            kp = inst.keypoints
            assert kp.shape == (NUM_KEYPOINTS, 3) and kp.dtype == np.float32
            later = np.zeros_like(inst.mask)
            for other in instances[i + 1 :]:
                later |= other.mask
            for x, y, v in kp:
                seen[int(v)] += 1
                if v == 0:
                    assert x == 0 and y == 0
                    continue
                assert 0 <= x < 64 and 0 <= y < 64
                assert bool(later[int(y), int(x)]) == (v == 1), "v=1 exactly when a later object covers the point"
    assert all(count > 0 for count in seen.values()), f"every visibility should occur: {seen}"


def test_visible_centre_keypoint_lies_on_its_own_mask(split):
    checked = 0
    for instances in split.instances:
        for inst in instances:
            x, y, v = inst.keypoints[4]
            if v == 2 and split.category_names[inst.category] != "ring":  # a ring's centre is in its hole
                assert inst.mask[int(y), int(x)]
                checked += 1
    assert checked > 50


def test_occlusion_and_small_objects_occur(split):
    instances = [inst for image in split.instances for inst in image]
    areas = np.array([inst.mask.sum() for inst in instances])
    assert (areas < 30).mean() > 0.1, "defaults should produce small objects"
    partly_hidden = sum(1 for inst in instances if (inst.keypoints[:, 2] == 1).any())
    assert partly_hidden > 5


def test_colour_alone_does_not_give_the_class(split):
    # Nearest class-colour classifier on foreground pixels must be far from perfect.
    fg = split.semantic > 0
    pixels = split.images.transpose(0, 2, 3, 1)[fg]  # (P, 3)
    means = np.array([CLASS_COLOURS[k] for k in SHAPE_KINDS[: split.num_classes]])
    guess = np.argmin(((pixels[:, None, :] - means[None]) ** 2).sum(-1), axis=1) + 1
    accuracy = (guess == split.semantic[fg]).mean()
    assert accuracy < 0.7, accuracy


def test_generation_is_fast():
    start = time.perf_counter()
    generate_shapes(512, seed=0)
    assert time.perf_counter() - start < 10.0  # ~0.6 s measured; generous for shared CI cores
