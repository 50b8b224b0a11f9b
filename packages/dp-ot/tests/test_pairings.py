"""Pairing precomputer: exactness (scipy oracle), determinism, thread independence, weights,
reuse, resume and bad input."""

from __future__ import annotations

import json
import os
from pathlib import Path

import dp_ot
import numpy as np
import pytest
import scipy.optimize
from dp_ot._streams import epoch_order


@pytest.fixture(scope="module")
def data() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(1000, 3))  # 3 blocks of 256 + 232 dropped


@pytest.fixture(scope="module")
def pairs(data: np.ndarray, tmp_path_factory) -> dp_ot.Pairings:
    out = tmp_path_factory.mktemp("p") / "pairs"
    return dp_ot.precompute_pairings(data, out, seed=7, n_epochs=3, threads=2, progress=False)


def test_layout_and_size(pairs: dp_ot.Pairings) -> None:
    h = pairs.header
    assert (h["n_blocks"], h["block"], h["dropped_per_epoch"]) == (3, 256, 232)
    assert os.path.getsize(pairs.path / "pairings.u8") == 3 * 3 * 256  # one byte per pair
    assert not Path(str(pairs.path) + ".partial").exists()  # renamed when complete


def test_minibatches_are_exact_ot_pairs(pairs: dp_ot.Pairings, data: np.ndarray) -> None:
    seen = []
    for epoch in range(3):
        batches = list(pairs.minibatches(epoch, data))
        assert len(batches) == 3
        for x0, x1 in batches:
            assert x0.shape == x1.shape == (256, 3)
            c = ((x1[:, None] - x0[None]) ** 2).sum(-1)
            r, k = scipy.optimize.linear_sum_assignment(c)
            # the stored pairing is the diagonal; exact optimum up to summation rounding
            assert abs(np.trace(c) - c[r, k].sum()) <= 1e-12 * c[r, k].sum()
            assert np.all(np.isin(x1, data).all(axis=1))  # x1 rows are data rows
            seen.append(x1)
    # different epochs use different orders
    assert not np.array_equal(seen[0], seen[3])


def test_noise_is_standard_normal(pairs: dp_ot.Pairings, data: np.ndarray) -> None:
    x0 = np.concatenate([b[0] for e in range(3) for b in pairs.minibatches(e, data)])
    # 2304 x 3 N(0,1) draws: mean s.e. 0.012, std s.e. 0.0085 -> 5 sigma bounds
    assert np.all(np.abs(x0.mean(0)) < 0.06) and np.all(np.abs(x0.std(0) - 1) < 0.045)


def test_bit_identical_for_same_seed_any_threads(data, pairs, tmp_path) -> None:
    other = dp_ot.precompute_pairings(
        data, tmp_path / "again", seed=7, n_epochs=3, threads=1, progress=False
    )
    a = (pairs.path / "pairings.u8").read_bytes()
    assert a == (other.path / "pairings.u8").read_bytes()
    for e in (0, 4):
        for (p0, p1), (q0, q1) in zip(
            pairs.minibatches(e, data), other.minibatches(e, data), strict=True
        ):
            assert np.array_equal(p0, q0) and np.array_equal(p1, q1)
    diff = dp_ot.precompute_pairings(data, tmp_path / "s8", seed=8, n_epochs=1, progress=False)
    assert (diff.path / "pairings.u8").read_bytes() != a[: 3 * 256]


def test_reuse_after_n_epochs(pairs: dp_ot.Pairings, data: np.ndarray) -> None:
    base = {x1.tobytes(): x0 for x0, x1 in pairs.minibatches(1, data)}
    later = list(pairs.minibatches(4, data))  # stored epoch 1, reshuffled block order
    assert len(later) == len(base)
    for x0, x1 in later:
        assert np.array_equal(base[x1.tobytes()], x0)  # same pairs, reused
    assert [x1.tobytes() for _, x1 in later] != list(base)  # (3! orders, seeded: differs)


def test_blocks_per_batch(pairs: dp_ot.Pairings, data: np.ndarray) -> None:
    ((x0, x1),) = list(pairs.minibatches(0, data, blocks_per_batch=2))  # trailing block dropped
    assert x0.shape == x1.shape == (512, 3)


@pytest.mark.parametrize("epoch", [0, 2, 4])  # 4: stored epoch 1, reshuffled block order
@pytest.mark.parametrize("blocks_per_batch", [1, 2])
def test_minibatch_indices_are_the_minibatches(pairs, data, epoch, blocks_per_batch) -> None:
    by_value = list(pairs.minibatches(epoch, data, blocks_per_batch=blocks_per_batch))
    by_index = list(pairs.minibatch_indices(epoch, blocks_per_batch=blocks_per_batch))
    assert len(by_index) == len(by_value) == 3 // blocks_per_batch
    for (x0, x1), (y0, rows) in zip(by_value, by_index, strict=True):
        assert rows.dtype == np.int64 and rows.shape == (blocks_per_batch * 256,)
        # the same batches bit for bit: the indices pick exactly the yielded x1 rows
        assert np.array_equal(x0, y0) and np.array_equal(data[rows], x1)
    rows = np.concatenate([r for _, r in by_index])
    assert len(np.unique(rows)) == len(rows)  # unweighted: each point at most once per epoch
    with pytest.raises(ValueError, match="epoch must be >= 0"):
        next(pairs.minibatch_indices(-1))


def test_minibatch_indices_weighted_and_duplicate_rows(tmp_path) -> None:
    # 8 copies of each of 64 points: rows equal in value are still told apart by index.
    x = np.repeat(np.random.default_rng(5).normal(size=(64, 2)), 8, axis=0)
    w = np.random.default_rng(6).uniform(0.1, 1.0, len(x))
    for weights in (None, w):
        p = dp_ot.precompute_pairings(
            x,
            tmp_path / f"d{weights is None}",
            weights=weights,
            seed=1,
            n_epochs=1,
            block=64,
            progress=False,
        )
        rows = [r for _, r in p.minibatch_indices(0)]
        for r, (_, x1) in zip(rows, p.minibatches(0, x), strict=True):
            assert np.array_equal(x[r], x1)
        order = np.concatenate(rows)
        # the indices are the epoch's blocking order (stored pairings need nothing else)
        n = len(x)
        p_norm = None if weights is None else weights / weights.sum()
        assert np.array_equal(order, epoch_order(1, 0, n, p_norm)[: len(order)])
        if weights is None:
            assert len(np.unique(order)) == n  # every copy exactly once


def test_weights_resampled_in_proportion(tmp_path) -> None:
    rng = np.random.default_rng(1)
    x = np.arange(8.0)[:, None] * np.ones((1, 2))  # 8 distinct points, identifiable by value
    w = np.array([1, 2, 3, 4, 0, 0, 5, 5], dtype=float)
    p = dp_ot.precompute_pairings(
        x, tmp_path / "w", weights=w, seed=3, n_epochs=50, block=4, progress=False
    )
    counts = np.zeros(8)
    for e in range(50):
        for _, x1 in p.minibatches(e, x):
            counts += np.bincount(x1[:, 0].astype(int), minlength=8)
    expected = counts.sum() * w / w.sum()
    assert counts[4] == counts[5] == 0  # zero weight never drawn
    # Pearson chi-square over the 6 drawn points (5 dof): 99.9% quantile is 20.5
    chi2 = (((counts - expected) ** 2)[expected > 0] / expected[expected > 0]).sum()
    assert chi2 < 20.5
    del rng


def test_resume_and_existing_output(data, tmp_path) -> None:
    out = tmp_path / "r"
    ref = dp_ot.precompute_pairings(data, tmp_path / "ref", seed=2, n_epochs=3, progress=False)
    # simulate an interrupted run: a finished epoch 0 left in out.partial
    part = tmp_path / "r.partial"
    dp_ot.precompute_pairings(data, part, seed=2, n_epochs=1, progress=False)
    first = (part / "pairings.u8").read_bytes()
    hdr = json.loads((part / "header.json").read_text())
    hdr.update(n_epochs=3, epochs_done=1)
    (part / "header.json").write_text(json.dumps(hdr))
    (part / "pairings.u8").write_bytes(first + b"\xff" * (2 * 3 * 256))
    res = dp_ot.precompute_pairings(data, out, seed=2, n_epochs=3, progress=False)
    assert (res.path / "pairings.u8").read_bytes() == (ref.path / "pairings.u8").read_bytes()
    # same arguments again: returns the existing result; different ones: refuses
    assert dp_ot.precompute_pairings(data, out, seed=2, n_epochs=3, progress=False).path == out
    with pytest.raises(FileExistsError, match="different arguments"):
        dp_ot.precompute_pairings(data, out, seed=5, n_epochs=3, progress=False)


def test_invalid_inputs(data, pairs, tmp_path) -> None:
    bad = data.copy()
    bad[[3, 9]] = np.nan
    cases = [
        (dict(x1=bad), "2 rows with NaN"),
        (dict(x1=data[:, 0]), "2-D"),
        (dict(x1=data[:10]), "at least one block"),
        (dict(x1=data, block=300), "block"),
        (dict(x1=data, seed=-1), "seed"),
        (dict(x1=data, weights=np.ones(5)), "weights"),
        (dict(x1=data, weights=-np.ones(len(data))), "weights"),
    ]
    for kwargs, match in cases:
        x1 = kwargs.pop("x1")
        with pytest.raises(ValueError, match=match):
            dp_ot.precompute_pairings(x1, tmp_path / "bad", progress=False, **kwargs)
    with pytest.raises(ValueError, match="not the data"):
        next(pairs.minibatches(0, data[::-1]))
    with pytest.raises(FileNotFoundError):
        dp_ot.Pairings.open(tmp_path / "nothing")


@pytest.mark.parametrize(
    ("damage", "match"),
    [
        (
            lambda d: (d / "header.json").write_text('{"format": "dp-ot-pair'),
            "corrupt or truncated",
        ),
        (lambda d: (d / "header.json").write_bytes(b"\xff\xfe\x00"), "corrupt or truncated"),
        (lambda d: (d / "header.json").write_text("[1, 2]"), "not a dp-ot-pairings/1 header"),
        (lambda d: (d / "header.json").write_text('{"format": "dp-ot-pairings/1"}'), "incomplete"),
        (lambda d: (d / "pairings.u8").write_bytes(b"\x00" * 10), "should hold 2304 bytes"),
    ],
)
def test_damaged_directory_names_file_and_recovery(data, pairs, tmp_path, damage, match) -> None:
    copy = tmp_path / "copy"
    copy.mkdir()
    for f in pairs.path.iterdir():
        (copy / f.name).write_bytes(f.read_bytes())
    damage(copy)
    for call in (
        lambda: dp_ot.Pairings.open(copy),
        lambda: dp_ot.precompute_pairings(data, copy, seed=7, n_epochs=3, progress=False),
    ):
        with pytest.raises(ValueError, match=match) as info:
            call()
        assert str(copy) in str(info.value) and "delete" in str(info.value)


def test_corrupt_partial_header(data, tmp_path) -> None:
    part = tmp_path / "r.partial"
    part.mkdir()
    (part / "header.json").write_text("{")
    with pytest.raises(ValueError, match=r"r\.partial/header\.json is unreadable, corrupt"):
        dp_ot.precompute_pairings(data, tmp_path / "r", n_epochs=1, progress=False)
