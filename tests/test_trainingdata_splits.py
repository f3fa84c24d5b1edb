"""Spatial-block splits: seeded, whole blocks, fractions."""

from __future__ import annotations

from collections import Counter

from jointseg.trainingdata.splits import assign_splits, block_of


def test_block_of_groups_chips() -> None:
    assert block_of("EPSG:32650", 659520, 3539520, 960) == block_of(
        "EPSG:32650", 660160, 3540160, 960)
    assert block_of("EPSG:32650", 660480, 3539520, 960) != block_of(
        "EPSG:32650", 660160, 3539520, 960)
    assert block_of("EPSG:32650", 0, 0, 960) != block_of("EPSG:32651", 0, 0, 960)


def test_assignment_is_seeded_and_proportional() -> None:
    blocks = [("EPSG:32650", i, j) for i in range(5) for j in range(4)]
    a = assign_splits(blocks, (0.7, 0.2, 0.1), seed=1)
    assert a == assign_splits(list(reversed(blocks)), (0.7, 0.2, 0.1), seed=1)
    assert Counter(a.values()) == {"train": 14, "val": 4, "test": 2}
    assert a != assign_splits(blocks, (0.7, 0.2, 0.1), seed=2)


def test_small_sets_keep_training() -> None:
    one = [("EPSG:32650", 0, 0)]
    assert assign_splits(one, (0.7, 0.2, 0.1), 0) == {one[0]: "train"}
    two = [("EPSG:32650", 0, 0), ("EPSG:32650", 1, 0)]
    assert sorted(assign_splits(two, (0.0, 0.5, 0.5), 0).values()).count("train") == 1
