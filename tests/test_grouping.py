import numpy as np
import pytest

from engine.grouping import batches, epoch_order, make_groups, split_train_val


def grid(n=10, step=4.0):
    xs, ys = np.meshgrid(np.arange(n) * step + 40, np.arange(n) * step + 40)
    rng = np.random.default_rng(0)
    return np.stack([xs.ravel(), ys.ravel()], 1) + rng.uniform(-0.5, 0.5, (n * n, 2))


def test_gridsize1_is_one_pattern_per_group():
    g = make_groups(grid(), 1, 64)
    assert g.indices.shape == (100, 1)
    assert np.all(g.offsets == 0)


def test_groups_are_the_nearest_neighbours():
    pos = grid()
    g = make_groups(pos, 2, 64)
    assert g.indices.shape[1] == 4
    for seed, row in enumerate(g.indices[:20]):  # n_groups None: group i is seeded by pattern i
        assert seed in row
        d = np.hypot(*(pos - pos[seed]).T)
        kth = np.sort(d)[3]
        assert np.all(d[row] <= kth + 1e-9)


def test_grouping_is_deterministic_per_seed():
    pos = grid()
    a = make_groups(pos, 2, 64, n_groups=50, seed=3, neighbours=7)
    b = make_groups(pos, 2, 64, n_groups=50, seed=3, neighbours=7)
    c = make_groups(pos, 2, 64, n_groups=50, seed=4, neighbours=7)
    assert np.array_equal(a.indices, b.indices)
    assert not np.array_equal(a.indices, c.indices)


def test_offsets_are_relative_to_group_centre():
    pos = grid()
    g = make_groups(pos, 2, 64)
    np.testing.assert_allclose(g.offsets.mean(axis=1), 0, atol=1e-5)
    np.testing.assert_allclose(pos[g.indices] - g.centres[:, None], g.offsets, atol=1e-5)


def test_far_groups_are_dropped():
    pos = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [200.0, 200.0]])
    g = make_groups(pos, 2, 64, n_groups=None)
    assert len(g) == 0  # every group of 4 includes the far point


def test_split_and_epoch_order():
    tr, va = split_train_val(100, 0.1, 0)
    assert len(va) == 10 and len(set(tr) | set(va)) == 100
    o1, o2 = epoch_order(90, 0, 0), epoch_order(90, 0, 1)
    assert sorted(o1) == list(range(90)) and not np.array_equal(o1, o2)
    assert np.array_equal(o1, epoch_order(90, 0, 0))
    assert [len(b) for b in batches(o1, 16)] == [16] * 5 + [10]


def test_gridsize_too_large_for_data():
    with pytest.raises(ValueError):
        make_groups(np.zeros((3, 2)), 2, 64)


def test_members_are_in_a_fixed_angular_order():
    """Channel c always means the same relative place in the group (angle of its offset increases with c)."""
    g = make_groups(grid(), 2, 64)
    ang = np.arctan2(g.offsets[..., 1], g.offsets[..., 0])
    assert np.all(np.diff(ang, axis=1) >= 0)
