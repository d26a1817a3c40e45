"""engine/augment.py: a flipped or transposed pattern is the pattern of the flipped object patch when the probe is
unchanged by the flip — the whole basis of orientation augmentation — and the training order carries each group's
orientation identically for both backends."""
from __future__ import annotations

import numpy as np
import pytest

from engine import augment, grouping, physics
from engine.backend_api import TrainingData

N = 32


def disk_probe(n: int = N, radius: float = 9.0, defocus: float = 3.0) -> np.ndarray:
    """A disk with a quadratic phase, centred on pixel n/2: symmetric under all eight orientations."""
    y, x = np.mgrid[0:n, 0:n] - n // 2
    r2 = (x ** 2 + y ** 2) / radius ** 2
    return ((r2 <= 1) * np.exp(1j * defocus * r2)).astype(np.complex128)


def random_patches(rng, shape) -> np.ndarray:
    return (1 + 0.3 * rng.standard_normal(shape)) * np.exp(1j * rng.standard_normal(shape))


@pytest.mark.parametrize("code", augment.ALL)
def test_orient_of_a_pattern_is_the_pattern_of_the_oriented_patch(code) -> None:
    rng = np.random.default_rng(code)
    probe, patches = disk_probe(), random_patches(rng, (3, N, N))
    counts = physics.forward_intensity(probe, patches).astype(np.float64)
    turned = physics.forward_intensity(probe, augment.orient(patches, code)).astype(np.float64)
    # float32 counts on both sides: the same numbers up to the float32 rounding of each
    np.testing.assert_allclose(turned, augment.orient(counts, code), rtol=0, atol=4 * np.finfo(np.float32).eps
                               * counts.max())


def test_orientations_form_the_square_group_and_offsets_follow_the_patches() -> None:
    a = np.arange(N * N, dtype=np.float64).reshape(N, N)
    images = {augment.orient(a, c).tobytes() for c in augment.ALL}
    assert len(images) == 8  # eight distinct orientations
    d = np.array([[1.5, -2.25], [0.0, 3.0]])
    assert np.array_equal(augment.orient_offsets(d, 0), d)
    assert np.array_equal(augment.orient_offsets(d, 1), [[1.5, 2.25], [0.0, -3.0]])
    assert np.array_equal(augment.orient_offsets(d, 2), [[-1.5, -2.25], [-0.0, 3.0]])
    assert np.array_equal(augment.orient_offsets(d, 4), [[-2.25, 1.5], [3.0, 0.0]])


@pytest.mark.parametrize("code", [1, 2, 4, 7])
def test_merging_oriented_members_at_oriented_offsets_gives_the_oriented_region(code) -> None:
    """gridsize > 1: a group's merged region turns with its members (offsets fractional: the sub-pixel merge).
    With a weight centred on pixel N/2 like the probe, 0 on row and column 0: ``merge_window``'s flat top is centred half a pixel off
    (on N/2 − ½), the model's own convention, which training applies alike to every sample."""
    rng = np.random.default_rng(10 + code)
    patches = random_patches(rng, (4, N, N)).astype(np.complex64)
    offsets = rng.uniform(-3, 3, (4, 2))
    y, x = np.mgrid[0:N, 0:N] - N // 2
    mask = np.exp(-(x ** 2 + y ** 2) / 40.0).astype(np.float32)
    mask[0, :] = mask[:, 0] = 0  # row/column 0 has no mirror inside the patch (as merge_window, which is 0 there)
    region, coverage = physics.merge_group(patches, offsets, mask)
    turned, turned_cov = physics.merge_group(augment.orient(patches, code), augment.orient_offsets(offsets, code),
                                             mask)
    np.testing.assert_allclose(turned, augment.orient(region, code), rtol=0, atol=1e-5)
    np.testing.assert_allclose(turned_cov, augment.orient(coverage, code), rtol=0, atol=1e-5)


def test_symmetric_orientations_keeps_only_what_the_probe_and_mask_allow() -> None:
    assert augment.symmetric_orientations(disk_probe()) == augment.ALL
    y, x = np.mgrid[0:N, 0:N] - N // 2
    tilted = disk_probe() * np.exp(1j * 0.2 * x)  # a phase ramp along x: only the row flip leaves it alone
    assert augment.symmetric_orientations(tilted) == (0, 1)
    rng = np.random.default_rng(0)
    assert augment.symmetric_orientations(random_patches(rng, (N, N))) == (0,)
    valid = np.ones((N, N), bool)
    valid[N // 2 + 3, N // 2 - 5] = False  # one dead pixel off every axis of symmetry
    assert augment.symmetric_orientations(disk_probe(), valid) == (0,)
    nudged = disk_probe() + 1e-5 * random_patches(rng, (N, N))  # within SYMMETRY_TOL (round-off of a real file)
    assert augment.symmetric_orientations(nudged) == augment.ALL


def test_epoch_order_is_the_plain_order_without_orientations_and_carries_a_slot_with_them() -> None:
    n = 50
    assert np.array_equal(augment.epoch_order(n, 3, 2, 1), grouping.epoch_order(n, 3, 2))
    order = augment.epoch_order(n, 3, 2, 8)
    slot, group = np.divmod(order, n)
    assert np.array_equal(group, grouping.epoch_order(n, 3, 2))  # the same groups in the same order
    assert slot.min() >= 0 and slot.max() < 8 and len(set(slot.tolist())) > 4
    assert np.array_equal(order, augment.epoch_order(n, 3, 2, 8))  # deterministic per (seed, epoch)
    assert not np.array_equal(order, augment.epoch_order(n, 3, 1, 8))


def test_training_batch_decodes_the_orientation_of_each_entry() -> None:
    rng = np.random.default_rng(1)
    amplitude = rng.random((6, N, N)).astype(np.float32)
    groups = grouping.make_groups(rng.uniform(0, 40, (6, 2)), 1, N)
    data = TrainingData(amplitude, groups, groups.take(np.arange(2)), 0.5, orientations=(0, 5, 6))
    sel = np.array([2, 6 + 4, 12 + 0])  # group 2 as measured, group 4 in orientation 5, group 0 in orientation 6
    batch = data.batch(groups, sel)
    want = [amplitude[2], augment.orient(amplitude[4], 5), augment.orient(amplitude[0], 6)]
    np.testing.assert_array_equal(batch.counts[:, 0], np.stack(want) ** 2)
    np.testing.assert_array_equal(batch.x[:, 0], (np.stack(want) * np.float32(0.5)).astype(np.float32))
    plain = data.batch(groups, np.array([2, 4, 0]))  # in range: as measured (validation, parity cases)
    np.testing.assert_array_equal(plain.counts[:, 0], amplitude[[2, 4, 0]] ** 2)
