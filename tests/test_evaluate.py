"""Tests of caimg_nmf.evaluate with known ground truth."""
import json

import numpy as np
import pytest
import tifffile

from caimg_nmf import evaluate as ev
from caimg_nmf import synthetic as syn
from caimg_nmf.errors import InputError


def squares(centres, size=6, shape=(40, 40)):
    """Square masks (K, H, W) with top-left corners at ``centres``."""
    m = np.zeros((len(centres), *shape), bool)
    for k, (r, c) in enumerate(centres):
        m[k, r:r + size, c:c + size] = True
    return m


TRUE = squares([(2, 2), (2, 20), (20, 2), (20, 20), (30, 30)])


def test_perfect_prediction():
    s = ev.evaluate(TRUE[::-1], TRUE)  # order does not matter
    assert (s.n_pred, s.n_true, s.n_matched) == (5, 5, 5)
    assert s.precision == s.recall == s.f1 == 1.0 and s.mean_iou == 1.0
    assert sorted((t, p) for p, t, _ in s.matches) == [(k, 4 - k) for k in range(5)]


def test_shifted_masks_known_iou():
    # 6x6 squares shifted by 2 columns: intersection 6*4 = 24, union 48 -> IoU 0.5
    pred = np.roll(TRUE, 2, axis=2)
    np.testing.assert_allclose(np.diag(ev.iou_matrix(pred, TRUE)), 0.5)
    s = ev.evaluate(pred, TRUE)
    assert s.n_matched == 5 and s.mean_iou == pytest.approx(0.5)
    # shift by 4: intersection 12, union 60 -> IoU 0.2 < 0.3, no match
    s = ev.evaluate(np.roll(TRUE, 4, axis=2), TRUE)
    assert s.n_matched == 0 and s.f1 == 0.0
    s = ev.evaluate(np.roll(TRUE, 4, axis=2), TRUE, iou_threshold=0.2)
    assert s.n_matched == 5


def test_subset_and_false_positives():
    pred = np.concatenate([TRUE[[0, 2, 3]], squares([(10, 10), (12, 30)])])
    s = ev.evaluate(pred, TRUE)
    assert s.n_matched == 3
    assert s.recall == pytest.approx(3 / 5) and s.precision == pytest.approx(3 / 5)
    assert s.f1 == pytest.approx(0.6)
    assert {t for _, t, _ in s.matches} == {0, 2, 3}


def test_one_to_one_hungarian():
    # two predictions overlap the same true cell; only one may match it, and the
    # assignment must prefer the globally best pairing
    true = squares([(0, 0), (0, 5)], size=6, shape=(12, 20))
    pred = squares([(0, 1), (0, 4)], size=6, shape=(12, 20))
    m = ev.match_masks(pred, true)
    assert [(p, t) for p, t, _ in m] == [(0, 0), (1, 1)]
    m = ev.match_masks(pred[:1].repeat(2, axis=0), true[:1])
    assert len(m) == 1


def strips(spans, width=30):
    """Masks (K, 1, width): mask k covers columns ``spans[k][0]`` to ``spans[k][1] - 1``."""
    m = np.zeros((len(spans), 1, width), bool)
    for k, (a, b) in enumerate(spans):
        m[k, 0, a:b] = True
    return m


def test_hungarian_finds_two_matches_where_greedy_finds_one():
    """Greedy (best pair first) takes pred 0 - true 0 and leaves pred 1 nothing; the optimal
    one-to-one assignment pairs pred 0 - true 1 and pred 1 - true 0: two hits."""
    true = strips([(0, 10), (10, 20)])
    pred = strips([(3, 15), (0, 4)])
    iou = ev.iou_matrix(pred, true)
    # counted by hand: 7/15, 5/17; 4/10, 0
    np.testing.assert_array_equal(iou, [[7 / 15, 5 / 17], [4 / 10, 0.0]])
    m = ev.match_masks(pred, true, iou_threshold=0.25)
    assert [(p, t) for p, t, _ in m] == [(0, 1), (1, 0)]
    s = ev.evaluate(pred, true, iou_threshold=0.25)
    assert s.n_matched == 2 and s.recall == 1.0
    assert s.mean_iou == pytest.approx((5 / 17 + 4 / 10) / 2)


@pytest.mark.parametrize("inter, union, threshold", [(3, 10, 0.3), (12, 60, 0.2), (1, 3, 1 / 3)])
def test_iou_exactly_at_the_threshold_matches(inter, union, threshold):
    """A pair whose IoU is exactly the threshold is a hit ("at least"), one just above it is not.
    The IoU is a ratio of pixel counts computed in float64, so it is the correctly rounded
    ratio, the same float as the threshold literal (3/10 == 0.3 in float64)."""
    true = strips([(0, inter + (union - inter) // 2)], width=union + 5)
    pred = strips([(inter + (union - inter) // 2 - inter, union)], width=union + 5)
    iou = ev.iou_matrix(pred, true)
    assert (pred & true).sum() == inter and (pred | true).sum() == union
    assert iou[0, 0] == threshold  # exact, not approx
    assert ev.evaluate(pred, true, iou_threshold=threshold).n_matched == 1
    assert ev.evaluate(pred, true, iou_threshold=np.nextafter(threshold, 1.0)).n_matched == 0


def test_empty_sets():
    empty = np.zeros((0, 40, 40), bool)
    for pred, true in ((empty, TRUE), (TRUE, empty), (empty, empty), ([], TRUE)):
        s = ev.evaluate(pred, true)
        assert s.n_matched == 0 and s.f1 == 0 and s.precision == 0 and s.recall == 0
        assert s.mean_iou == 0.0
        str(s), s.as_dict()
    assert ev.match_masks(empty, TRUE) == []
    s = ev.evaluate(empty, TRUE, pred_traces=np.zeros((0, 10)), true_traces=np.ones((5, 10)),
                    active=np.ones(5, bool))
    assert s.trace_corr == 0.0 and s.recall_active == 0.0


def test_traces_footprints_active():
    rng = np.random.default_rng(0)
    tr = rng.random((5, 50))
    fp = TRUE * rng.random(TRUE.shape)
    s = ev.evaluate(TRUE, TRUE, pred_traces=tr * 3 + 1, true_traces=tr,
                    pred_footprints=fp, true_footprints=fp,
                    active=np.array([1, 1, 0, 0, 1], bool))
    assert s.trace_corr == pytest.approx(1.0) and s.footprint_cosine == pytest.approx(1.0)
    assert s.recall_active == 1.0 and s.n_active == 3
    s = ev.evaluate(TRUE[[0, 1]], TRUE, active=np.array([1, 1, 0, 0, 1], bool))
    assert s.recall_active == pytest.approx(2 / 3)
    d = s.as_dict()
    json.dumps(d)
    assert d["n_matched"] == 2 and "recall" in str(s)
    with pytest.raises(InputError, match="frames"):
        ev.evaluate(TRUE, TRUE, pred_traces=np.ones((5, 4)), true_traces=np.ones((5, 5)))


def test_trace_correlation_leaves_out_silent_true_cells():
    """A matched cell whose true trace never changes (silent) has nothing to correlate: it must not
    count as r = 0 in the mean."""
    rng = np.random.default_rng(1)
    tr = rng.random((5, 50))
    tr[2] = 0.0                                   # a silent planted cell, found (e.g. in the mean image)
    pred = tr * 2 + 0.01 * rng.random((5, 50))
    s = ev.evaluate(TRUE, TRUE, pred_traces=pred, true_traces=tr)
    assert s.trace_corr > 0.99 and s.n_trace_pairs == 4 and "over the 4 hits" in str(s)
    all_silent = ev.evaluate(TRUE, TRUE, pred_traces=pred, true_traces=np.zeros((5, 50)))
    assert all_silent.trace_corr is None and all_silent.n_trace_pairs == 0 and "trace r" not in str(all_silent)


def test_match_footprints():
    rng = np.random.default_rng(1)
    fp = TRUE * rng.random(TRUE.shape)
    m = ev.match_footprints(fp[[3, 1]] * 5, fp)
    assert [(p, t) for p, t, _ in m] == [(0, 3), (1, 1)]
    assert all(c == pytest.approx(1.0) for *_, c in m)
    assert ev.match_footprints(fp, np.zeros((0, 40, 40))) == []


def test_neurofinder_json_round_trip(tmp_path):
    regions = [{"id": k, "coordinates": np.argwhere(m).tolist()} for k, m in enumerate(TRUE)]
    p = tmp_path / "regions.json"
    p.write_text(json.dumps(regions))
    masks, fp, tr = ev.load_truth_masks(p, shape=(40, 40))
    np.testing.assert_array_equal(masks, TRUE)
    assert fp is None and tr is None
    with pytest.raises(InputError, match="shape"):
        ev.load_truth_masks(p)
    with pytest.raises(InputError, match="outside"):
        ev.load_truth_masks(p, shape=(30, 30))


def test_load_stacks_and_synthetic_truth(tmp_path):
    np.save(tmp_path / "m.npy", TRUE.astype(np.uint8))
    tifffile.imwrite(tmp_path / "m.tif", TRUE.astype(np.uint8))
    for name in ("m.npy", "m.tif"):
        masks, _, _ = ev.load_truth_masks(tmp_path / name)
        np.testing.assert_array_equal(masks, TRUE)
    s = syn.make_movie(3, (32, 32), 40, seed=0)
    s.save_truth(tmp_path / "t.h5")
    masks, fp, tr = ev.load_truth_masks(tmp_path / "t.h5", shape=(32, 32))
    np.testing.assert_array_equal(masks, s.masks())
    np.testing.assert_array_equal(tr, s.traces)
    assert ev.evaluate(s.masks(), masks, pred_footprints=s.footprints,
                       true_footprints=fp).footprint_cosine == pytest.approx(1.0)


def test_load_errors(tmp_path):
    with pytest.raises(InputError, match="not found"):
        ev.load_truth_masks(tmp_path / "nope.json", shape=(4, 4))
    (tmp_path / "a.csv").write_text("1,2")
    with pytest.raises(InputError, match="unknown format"):
        ev.load_truth_masks(tmp_path / "a.csv")
    np.save(tmp_path / "two.npy", np.ones((4, 4)))
    with pytest.raises(InputError, match=r"\(K, H, W\)"):
        ev.load_truth_masks(tmp_path / "two.npy")
    np.save(tmp_path / "three.npy", np.ones((2, 4, 4)))
    with pytest.raises(InputError, match="shape"):
        ev.load_truth_masks(tmp_path / "three.npy", shape=(5, 5))
    with pytest.raises(InputError, match="same"):
        ev.evaluate(TRUE, TRUE[:, :20])


def test_active_cells_on_synthetic():
    s = syn.make_movie(4, (48, 48), 400, spike_rate=0.3, noise=0.05, seed=4)
    # a fifth "annotated" cell where nothing happens: a square in an empty corner
    empty = np.zeros((1, 48, 48), bool)
    cover = s.masks().any(axis=0)
    r, c = next((r, c) for r in range(0, 42, 3) for c in range(0, 42, 3)
                if not cover[r:r + 6, c:c + 6].any())
    empty[0, r:r + 6, c:c + 6] = True
    masks = np.concatenate([s.masks(), empty])
    act, stats = ev.active_cells(s.movie, masks, frame_rate=10.0, return_stats=True)
    assert act.tolist() == [True] * 4 + [False]
    assert stats["peak_z"].shape == (5,)
    act2 = ev.active_cells(ev.mask_traces(s.movie, masks), frame_rate=10.0,
                           dff_thresh=0.2)
    assert act2.tolist() == [True] * 4 + [False]
    with pytest.raises(InputError):
        ev.active_cells(s.movie)


def test_active_cells_with_neuropil_and_dff_input():
    s = syn.make_movie(6, (64, 64), 600, neuropil=0.3, noise=0.05, seed=5)
    act = ev.active_cells(s.movie, s.masks(), frame_rate=10.0)
    assert act.sum() >= 5  # the ring neuropil correction keeps weak cells visible
    rings = ev.ring_masks(s.masks())
    assert not (rings & s.masks().any(axis=0)).any() and rings.any(axis=(1, 2)).all()
    dff = s.traces / s.baselines[:, None]
    flat = np.zeros_like(dff)
    act = ev.active_cells(np.concatenate([dff, flat]), frame_rate=10.0, is_dff=True)
    assert act.tolist() == [True] * 6 + [False] * 6


def test_iou_for_many_cells():
    """1000 cells (its time is measured in benchmarks/bench_speed_targets.py, not asserted here)."""
    rng = np.random.default_rng(0)
    K, shape = 1000, (256, 256)
    corners = rng.integers(0, 246, size=(K, 2))
    true = squares(corners, size=10, shape=shape)
    pred = np.roll(true, 1, axis=1)
    s = ev.evaluate(pred, true)
    assert s.n_matched >= 0.9 * K and s.mean_iou > 0.75
