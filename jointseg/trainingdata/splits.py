"""Spatial-block splits: chips in one square block share one split.

Blocks are ``split_block_m`` squares on a CRS-wide grid (origin 0, 0) in the chips'
CRS; a block's key is ``(crs, floor(xmin / block), floor(ymin / block))``. The sorted
block keys are shuffled with ``numpy.random.default_rng(seed)`` and cut in order into
train / val / test by the fractions (rounded, train keeps at least one block), so
the assignment depends only on the seed and the set of blocks, and no block (hence no
pair of chips within one block) straddles two splits.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

SPLITS = ("train", "val", "test")

BlockKey = tuple[str, int, int]


def block_of(crs: str, xmin: float, ymin: float, block_m: int) -> BlockKey:
    """The split block holding a chip's lower-left corner."""
    return (crs, math.floor(xmin / block_m), math.floor(ymin / block_m))


def assign_splits(blocks: Sequence[BlockKey], fractions: Sequence[float], seed: int
                  ) -> dict[BlockKey, str]:
    """Split name per block: seeded shuffle, then the first ``round(f_val x n)`` blocks
    after the training share go to val and ``round(f_test x n)`` to test."""
    keys = sorted(set(blocks))
    n = len(keys)
    order = np.random.default_rng(seed).permutation(n)
    n_val = round(fractions[1] * n)
    n_test = round(fractions[2] * n)
    while n_val + n_test >= n and n_val + n_test > 0 and n > 0:
        # keep at least one training block: drop from the larger of val / test
        if n_test >= n_val:
            n_test -= 1
        else:
            n_val -= 1
    n_train = n - n_val - n_test
    names = ["train"] * n_train + ["val"] * n_val + ["test"] * n_test
    return {keys[i]: names[k] for k, i in enumerate(order)}
