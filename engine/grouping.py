"""Gridsize grouping (docs/physics.md): C = g² nearest neighbours per group via a KD-tree, deterministic per seed.

Also the split and per-epoch order shared by both backends, so that they see the same batches in the same order.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from engine.physics import merge_pad


@dataclass(frozen=True)
class Groups:
    """indices (G, C) into the dataset; offsets (G, C, 2) as (dx, dy) from the group centre; centres (G, 2)."""

    indices: np.ndarray
    offsets: np.ndarray
    centres: np.ndarray

    def __len__(self) -> int:
        return len(self.indices)

    def take(self, sel: np.ndarray) -> "Groups":
        return Groups(self.indices[sel], self.offsets[sel], self.centres[sel])


def default_neighbours(gridsize: int) -> int:
    """KD-tree candidates for gridsize g: 4 (TrainingConfig.neighbours' default), never fewer than the g² members."""
    return max(4, gridsize * gridsize)


def make_groups(positions: np.ndarray, gridsize: int, N: int, n_groups: int | None = None, seed: int = 0,
                neighbours: int | None = None) -> Groups:
    """Group each seed pattern with its nearest neighbours.

    gridsize 1: every pattern is its own group (a seeded subset when ``n_groups`` < M).
    gridsize g > 1: seed patterns are drawn with a seeded RNG (all of them, in order, when ``n_groups`` is None);
    each group is the seed plus C-1 patterns chosen among its ``neighbours`` nearest (the C nearest when
    neighbours == C). Members farther than merge_pad(N) from the group centre are dropped with the group.
    """
    pos = np.asarray(positions, dtype=np.float64)
    M = len(pos)
    C = gridsize * gridsize
    rng = np.random.default_rng(seed)
    if n_groups is None:
        seeds = np.arange(M)
    elif n_groups <= M:
        seeds = np.sort(rng.choice(M, size=n_groups, replace=False))
    else:
        seeds = np.concatenate([np.arange(M), rng.choice(M, size=n_groups - M, replace=True)])
    if C == 1:
        idx = seeds[:, None]
    else:
        if M < C:
            raise ValueError(f"gridsize {gridsize} needs at least {C} patterns, the dataset has {M}")
        k = max(neighbours or C, C)
        k = min(k, M)
        _, nn = cKDTree(pos).query(pos[seeds], k=k)
        nn = np.atleast_2d(nn)
        if k == C:
            idx = nn
        else:
            picks = np.stack([rng.choice(np.arange(1, k), size=C - 1, replace=False) for _ in seeds])
            idx = np.concatenate([nn[:, :1], np.take_along_axis(nn, picks, axis=1)], axis=1)
    centres = pos[idx].mean(axis=1)
    if C > 1:  # members in a fixed angular order around the centre, so each channel means the same relative place
        rel = pos[idx] - centres[:, None, :]
        order = np.argsort(np.arctan2(rel[..., 1], rel[..., 0]), axis=1, kind="stable")
        idx = np.take_along_axis(idx, order, axis=1)
    offsets = pos[idx] - centres[:, None, :]
    keep = np.abs(offsets).max(axis=(1, 2)) <= merge_pad(N)
    return Groups(idx[keep].astype(np.int64), offsets[keep].astype(np.float32), centres[keep])


def split_train_val(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded split of n groups; at least one training group; validation may be empty."""
    perm = np.random.default_rng([seed, 7]).permutation(n)
    n_val = int(round(n * val_fraction))
    n_val = min(n_val, n - 1)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """The shuffled order of the n training groups in ``epoch`` — the same in every backend."""
    return np.random.default_rng([seed, 1000 + epoch]).permutation(n)


def batches(order: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Consecutive batches of ``order``; the last may be short (kept: small fixtures have few groups)."""
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
