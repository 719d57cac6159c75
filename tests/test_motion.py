"""Tests of the motion-correction stage (caimg_nmf.stages.motion) on synthetic movies with known motion."""
import dataclasses
import logging

import numpy as np
import pytest
from scipy import ndimage

from caimg_nmf.config import Config, MotionConfig
from caimg_nmf.errors import ConfigError, InputError
from caimg_nmf.stages.motion import MotionResult, correct_motion, estimate_motion_memory

H, W, T = 64, 80, 60


def _base_image(rng, h=H, w=W):
    """A textured static image: smoothed noise plus a few bright blobs (cells)."""
    img = ndimage.gaussian_filter(rng.standard_normal((h, w)), 2.0) * 30 + 100
    yy, xx = np.mgrid[:h, :w]
    for cy, cx in [(0.3, 0.35), (0.6, 0.75), (0.25, 0.8), (0.78, 0.25), (0.5, 0.5)]:
        img += 60 * np.exp(-((yy - cy * h) ** 2 + (xx - cx * w) ** 2) / 8.0)
    return img


def _cfg(**kw) -> MotionConfig:
    return dataclasses.replace(Config().motion, **kw)


@pytest.fixture(scope="module")
def rigid_movie():
    """60 frames of 64x80, each displaced by a known sub-pixel (dy, dx) within +-4 px, plus noise."""
    rng = np.random.default_rng(1)
    base = _base_image(rng)
    d = rng.uniform(-4, 4, (T, 2))
    d -= d.mean(axis=0)  # the template sits at the movie's mean position (documented)
    mov = np.stack([ndimage.shift(base, d[t], order=3, mode="nearest") for t in range(T)])
    mov += rng.normal(0, 3.0, mov.shape)
    return mov.astype(np.float32), d, base


@pytest.fixture(scope="module")
def rigid_result(rigid_movie):
    return correct_motion(rigid_movie[0], _cfg())


def _corr(a, b):
    a = a - a.mean()
    b = b - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


def _inner(a, m=6):
    return a[..., m:-m, m:-m]


def test_rigid_recovers_planted_shifts(rigid_movie, rigid_result):
    mov, d, _ = rigid_movie
    r = rigid_result
    assert isinstance(r, MotionResult)
    assert r.method == "rigid" and r.patch_shifts is None
    assert r.shifts.shape == (T, 2) and r.shifts.dtype == np.float32
    assert r.frames.shape == mov.shape and r.frames.dtype == np.float32
    assert r.template.shape == (H, W) and r.template.dtype == np.float32
    # Sign convention: shifts[t] is the shift applied to frame t, i.e. minus the planted displacement.
    err = r.shifts + d
    rms = np.sqrt((err ** 2).sum(axis=1).mean())
    assert rms < 0.2, f"RMS shift error {rms:.3f} px"
    assert r.max_shift() == pytest.approx(np.abs(r.shifts).max())
    assert r.max_shift() > 3.0


def test_registration_improves_correlation_with_template(rigid_movie, rigid_result):
    mov, _, base = rigid_movie
    r = rigid_result
    before = np.mean([_corr(_inner(f), _inner(r.template)) for f in mov])
    after = np.mean([_corr(_inner(f), _inner(r.template)) for f in r.frames])
    assert after > before + 0.1, (before, after)
    assert _corr(_inner(r.template), _inner(base)) > 0.95
    assert np.isfinite(r.frames).all()


def test_borders_are_filled_with_edge_values_not_zeros(rigid_movie, rigid_result):
    mov, _, _ = rigid_movie
    assert r_min(rigid_result.frames) >= mov.min() - 1e-3


def r_min(a):
    return float(np.min(a))


def test_upsample_one_gives_whole_pixel_shifts(rigid_movie):
    r = correct_motion(rigid_movie[0][:20], _cfg(upsample=1))
    assert np.array_equal(r.shifts, np.round(r.shifts))


def test_max_shift_clips(rigid_movie):
    r = correct_motion(rigid_movie[0], _cfg(max_shift=1.5))
    assert np.abs(r.shifts).max() <= 1.5 + 1e-6


def _warp(img, sy, sx, order=3):
    """Resample img so that content at (y, x) moves to (y + sy, x + sx) (sy, sx arrays (h, w))."""
    yy, xx = np.mgrid[:img.shape[0], :img.shape[1]].astype(float)
    return ndimage.map_coordinates(img, [yy - sy, xx - sx], order=order, mode="nearest")


def test_piecewise_beats_rigid_on_nonrigid_motion():
    rng = np.random.default_rng(2)
    h, w, t_total = 96, 128, 24
    base = _base_image(rng, h, w)
    xx = np.arange(w, dtype=float)
    blend = 0.5 * (1 + np.tanh((xx - w / 2) / 6.0))  # 0 on the left half, 1 on the right half
    left = rng.uniform(-2.5, 2.5, (t_total, 2))
    left -= left.mean(axis=0)
    right = -left  # the two halves move in opposite directions
    mov = []
    for t in range(t_total):
        sy = np.broadcast_to(left[t, 0] * (1 - blend) + right[t, 0] * blend, (h, w))
        sx = np.broadcast_to(left[t, 1] * (1 - blend) + right[t, 1] * blend, (h, w))
        mov.append(_warp(base, sy, sx))
    mov = (np.stack(mov) + rng.normal(0, 2.0, (t_total, h, w))).astype(np.float32)

    cfg = _cfg(patch_size=48, patch_overlap=16, max_deviation=6.0)
    rigid = correct_motion(mov, dataclasses.replace(cfg, method="rigid"))
    pw = correct_motion(mov, dataclasses.replace(cfg, method="piecewise"))
    assert pw.method == "piecewise"
    ny, nx = pw.patch_shifts.shape[1:3]
    assert pw.patch_shifts.shape == (t_total, ny, nx, 2) and nx >= 3
    assert len(pw.patch_centers[0]) == ny and len(pw.patch_centers[1]) == nx

    def err(r):  # distance of registered frames from the true (unmoving) image
        return float(np.mean([np.mean((_inner(f, 8) - _inner(base, 8)) ** 2) for f in r.frames]))

    assert err(pw) < 0.6 * err(rigid), (err(pw), err(rigid))
    # Patch shifts on the left and right recover the planted motions (minus sign: applied shift).
    rms_left = np.sqrt(np.mean((pw.patch_shifts[:, :, 0, :].mean(axis=1) + left) ** 2))
    rms_right = np.sqrt(np.mean((pw.patch_shifts[:, :, -1, :].mean(axis=1) + right) ** 2))
    assert rms_left < 0.5 and rms_right < 0.5, (rms_left, rms_right)


def test_piecewise_falls_back_to_rigid_on_small_frames(rigid_movie, caplog):
    with caplog.at_level(logging.WARNING):
        r = correct_motion(rigid_movie[0][:10], _cfg(method="piecewise"))  # 64x80 < two 128-px patches
    assert r.method == "rigid" and r.patch_shifts is None
    assert "rigid" in caplog.text


def test_method_none_returns_input_as_float32():
    rng = np.random.default_rng(3)
    mov = rng.integers(0, 4000, (9, 20, 24), dtype=np.uint16)
    r = correct_motion(mov, _cfg(method="none"))
    assert r.frames.dtype == np.float32
    assert np.array_equal(r.frames, mov.astype(np.float32))
    assert not r.shifts.any() and r.shifts.shape == (9, 2)
    assert r.method == "none" and r.max_shift() == 0.0


@pytest.mark.parametrize("shape", [(5, 12, 12), (1, 64, 80), (3, 16, 16), (4, 1, 30), (2, 9, 200)])
@pytest.mark.parametrize("method", ["rigid", "piecewise"])
def test_small_inputs_do_not_crash(shape, method):
    rng = np.random.default_rng(4)
    mov = rng.random(shape).astype(np.float32) * 100
    r = correct_motion(mov, _cfg(method=method, patch_size=8, patch_overlap=2))
    assert r.frames.shape == shape and np.isfinite(r.frames).all()
    assert np.isfinite(r.shifts).all() and r.template.shape == shape[1:]


def test_single_frame_is_unchanged(rigid_movie):
    frame = rigid_movie[0][:1]
    r = correct_motion(frame, _cfg())
    assert np.allclose(r.shifts, 0) and np.allclose(r.frames, frame)


def test_constant_frames_give_zero_shifts():
    mov = np.full((6, 32, 32), 500, np.uint16)
    mov[3] = 7  # a different but still constant frame
    for method in ("rigid", "piecewise"):
        r = correct_motion(mov, _cfg(method=method, patch_size=16, patch_overlap=4))
        assert not r.shifts.any()
        assert np.array_equal(r.frames, mov.astype(np.float32))


def test_chunked_equals_unchunked(rigid_movie):
    mov = rigid_movie[0][:30]
    calls = []
    a = correct_motion(mov, _cfg(chunk_frames=7, template_frames=25), progress=calls.append)
    b = correct_motion(mov, _cfg(chunk_frames=1000, template_frames=25))
    assert calls == [7, 14, 21, 28, 30]
    np.testing.assert_allclose(a.shifts, b.shifts, atol=1e-6)
    np.testing.assert_allclose(a.frames, b.frames, atol=1e-4)
    np.testing.assert_allclose(a.template, b.template, atol=1e-4)


def test_inputs_are_not_modified(rigid_movie):
    mov = rigid_movie[0][:12].copy()
    before = mov.copy()
    cfg = _cfg()
    cfg_before = dataclasses.asdict(cfg)
    correct_motion(mov, cfg)
    correct_motion(mov, dataclasses.replace(cfg, method="piecewise", patch_size=32, patch_overlap=8))
    assert np.array_equal(mov, before)
    assert dataclasses.asdict(cfg) == cfg_before


def test_out_memmap_and_memmap_input(tmp_path, rigid_movie):
    mov = rigid_movie[0][:15]
    src = np.lib.format.open_memmap(tmp_path / "in.npy", mode="w+", dtype=np.int16, shape=mov.shape)
    src[:] = np.round(mov).astype(np.int16)
    src.flush()
    src = np.load(tmp_path / "in.npy", mmap_mode="r")
    out = np.lib.format.open_memmap(tmp_path / "out.npy", mode="w+", dtype=np.float32, shape=mov.shape)
    r = correct_motion(src, _cfg(chunk_frames=4), out=out)
    assert r.frames is out
    ref = correct_motion(np.asarray(src), _cfg(chunk_frames=4))
    np.testing.assert_allclose(np.asarray(out), ref.frames, atol=1e-4)


def test_h5py_dataset_input(tmp_path, rigid_movie):
    h5py = pytest.importorskip("h5py")
    mov = rigid_movie[0][:10]
    with h5py.File(tmp_path / "m.h5", "w") as f:
        f["mov"] = mov
    with h5py.File(tmp_path / "m.h5", "r") as f:
        r = correct_motion(f["mov"], _cfg(chunk_frames=3))
    ref = correct_motion(mov, _cfg(chunk_frames=3))
    np.testing.assert_allclose(r.frames, ref.frames, atol=1e-5)


@pytest.mark.parametrize("bad, words", [
    (np.zeros((20, 20)), "3-D"),
    ([[[1.0]]], "array"),
    ("movie.tif", "array"),
    (np.zeros((0, 8, 8)), "empty"),
    (np.zeros((3, 8, 8), complex), "real"),
])
def test_bad_frames_raise_input_error(bad, words):
    with pytest.raises(InputError, match=words):
        correct_motion(bad, _cfg())


def test_bad_out_and_nan_raise_input_error(tmp_path):
    mov = np.zeros((3, 8, 8), np.float32)
    with pytest.raises(InputError, match="shape"):
        correct_motion(mov, _cfg(), out=np.zeros((3, 8, 9), np.float32))
    with pytest.raises(InputError, match="float32"):
        correct_motion(mov, _cfg(), out=np.zeros((3, 8, 8), np.float64))
    mov[1, 2, 2] = np.nan
    with pytest.raises(InputError, match="frame 1"):
        correct_motion(mov, _cfg())
    with pytest.raises(TypeError, match="MotionConfig"):
        correct_motion(np.zeros((3, 8, 8)), Config())


def test_config_section():
    cfg = Config()
    assert cfg.motion.method == "rigid" and cfg.motion.max_shift == 10
    assert "[motion]" in cfg.to_toml()
    assert cfg.replace({"motion.method": "piecewise"}).motion.method == "piecewise"
    with pytest.raises(ConfigError, match="valid choices"):
        cfg.replace({"motion.method": "affine"})
    with pytest.raises(ConfigError, match="patch_overlap"):
        cfg.replace({"motion.patch_overlap": 128})
    with pytest.raises(ConfigError, match="at least"):
        cfg.replace({"motion.upsample": 0})


def test_estimate_memory_scales():
    cfg = Config().motion
    small = estimate_motion_memory((600, 256, 256), cfg)
    big = estimate_motion_memory((600, 512, 512), cfg)
    assert big > 3.5 * small
    out_bytes = 600 * 512 * 512 * 4
    assert big > out_bytes  # includes the float32 output
    assert estimate_motion_memory((600, 512, 512), cfg, include_output=False) == big - out_bytes
    fewer = dataclasses.replace(cfg, chunk_frames=20, template_frames=50)
    assert estimate_motion_memory((600, 512, 512), fewer, include_output=False) < 0.3 * (big - out_bytes)


def test_out_may_be_the_input_array(rigid_movie):
    mov = rigid_movie[0][:12].copy()
    expected = correct_motion(mov, _cfg(chunk_frames=5)).frames
    r = correct_motion(mov, _cfg(chunk_frames=5), out=mov)  # in place, on purpose
    assert r.frames is mov
    np.testing.assert_allclose(mov, expected, atol=1e-5)


# --- A shift only where the registration says something (issue 15's note) -------------------
# Phase correlation always has a highest point, even for a frame without structure; registering
# pure noise shifted its frames up to max_shift to align noise with noise, which gave the mean image
# structure the noise image lacks, and the mean-image soma search false cells.

def _noise(shape, seed):
    return np.random.default_rng(seed).normal(100, 1, shape).astype(np.float32)


@pytest.mark.parametrize("method", ["rigid", "piecewise"])
@pytest.mark.parametrize("shape, seed", [((60, 32, 40), 0), ((60, 48, 48), 1), ((80, 40, 64), 2), ((40, 64, 96), 3)],
                         ids=["60x32x40", "60x48x48", "80x40x64", "40x64x96"])
def test_pure_noise_is_not_shifted(shape, seed, method):
    """A movie of pure noise: no frame (and no patch) moves more than a fraction of a pixel, and the
    frames' correlation peaks do not stand out."""
    r = correct_motion(_noise(shape, seed), _cfg(method=method, patch_size=24, patch_overlap=8))
    assert r.method == method
    assert np.abs(r.shifts).max() <= 0.25
    assert r.peak_z.shape == (shape[0],) and r.min_peak_z > 4.0
    assert np.mean(r.peak_z <= r.min_peak_z) >= 0.9
    if method == "piecewise":
        assert np.abs(r.patch_shifts).max() <= 0.25
        assert r.patch_peak_z.shape == r.patch_shifts.shape[:3] and r.min_patch_peak_z > 4.0
    assert f"{np.sum(r.peak_z <= r.min_peak_z)} of {shape[0]} frames kept shift 0" in r.unshifted()


@pytest.fixture(scope="module")
def unregistered_noise_cells():
    """Cells the pipeline finds on the noise movies without registration, by seed."""
    import caimg_nmf
    return {seed: caimg_nmf.run(movie=_noise((60, 32, 40), seed), cell_diameter=6, frame_rate=10, save=False,
                                quiet=True, overrides={"detect.min_pnr": 1000, "motion.method": "none"}).n_cells
            for seed in (0, 3)}


@pytest.mark.parametrize("method", ["rigid", "piecewise"])
@pytest.mark.parametrize("seed", [0, 3])
def test_run_on_pure_noise_registration_adds_no_cells(seed, method, unregistered_noise_cells, tmp_path):
    """caimg_nmf.run on pure noise with motion correction finds what it finds without it (no
    cell: no seed passes min_pnr, and the mean image of unshifted noise holds no soma). The peaks'
    z-scores and thresholds are saved."""
    import caimg_nmf
    r = caimg_nmf.run(movie=_noise((60, 32, 40), seed), cell_diameter=6, frame_rate=10, output=tmp_path / "r.h5",
                      figures=False, quiet=True, overrides={"detect.min_pnr": 1000, "motion.method": method,
                                                            "motion.patch_size": 16, "motion.patch_overlap": 4})
    assert unregistered_noise_cells[seed] == 0
    assert r.n_cells == 0
    assert np.abs(r.extras["motion/shifts"]).max() <= 0.25
    back = caimg_nmf.Result.load(tmp_path / "r.h5")
    z = back.get("motion/peak_z")
    assert z.shape == (60,) and (z <= back.attrs["motion_min_peak_z"]).mean() >= 0.9
    if method == "piecewise":
        assert back.get("motion/patch_peak_z").shape == back.get("motion/patch_shifts").shape[:3]
        assert back.attrs["motion_min_patch_peak_z"] > 4.0
    else:
        assert back.get("motion/patch_peak_z") is None and "motion_min_patch_peak_z" not in back.attrs


def test_dim_structure_with_planted_shifts_is_still_registered():
    """Texture whose contrast (std 8) is under half of each frame's noise (20), moved by up to
    +-6 px: every frame's peak stands out and the planted shifts are found as before the peaks
    were judged (RMS error 0.60 px, up to the template's anchor, a common offset)."""
    rng = np.random.default_rng(7)
    base = _base_image(rng)
    d = rng.uniform(-6, 6, (T, 2))
    d -= d.mean(axis=0)
    mov = np.stack([ndimage.shift(base, d[t], order=3, mode="nearest") for t in range(T)])
    mov = (mov + rng.normal(0, 20, mov.shape)).astype(np.float32)
    r = correct_motion(mov, _cfg())
    assert (r.peak_z > r.min_peak_z).all(), np.sort(r.peak_z)[:5]
    err = r.shifts + d
    rms = np.sqrt(((err - err.mean(axis=0)) ** 2).sum(axis=1).mean())
    assert rms < 0.65, rms
    assert r.unshifted().startswith(f"0 of {T} frames kept shift 0")


def test_piecewise_patches_without_structure_keep_the_rigid_shift():
    """Texture on the left half of the field only, the right half flat (a dark region) plus noise:
    the patches wholly on the right have nothing to register and keep their frame's rigid shift;
    those on the left follow the planted motion."""
    rng = np.random.default_rng(8)
    h, w, t_total, size = 96, 192, 30, 48
    base = _base_image(rng, h, w)
    base[:, w // 2:] = 100.0
    d = rng.uniform(-3, 3, (t_total, 2))
    d -= d.mean(axis=0)
    mov = np.stack([ndimage.shift(base, d[t], order=3, mode="nearest") for t in range(t_total)])
    mov = (mov + rng.normal(0, 3, mov.shape)).astype(np.float32)
    r = correct_motion(mov, _cfg(method="piecewise", patch_size=size, patch_overlap=16))
    starts = r.patch_centers[1] - (size - 1) / 2
    right = starts >= w // 2 + 6   # the patch's columns hold no texture, whatever the shift
    left = starts + size <= w // 2
    assert right.sum() >= 2 and left.sum() >= 2
    np.testing.assert_array_equal(r.patch_shifts[:, :, right], np.broadcast_to(
        r.shifts[:, None, None, :], r.patch_shifts[:, :, right].shape))
    assert (r.patch_peak_z[:, :, right] <= r.min_patch_peak_z).all()
    assert (r.patch_peak_z[:, :, left] > r.min_patch_peak_z).all()
    rms_left = np.sqrt(np.mean((r.patch_shifts[:, :, left] + d[:, None, None, :]) ** 2))
    assert rms_left < 0.4, rms_left


def test_correlation_significance_is_calibrated_on_noise():
    """Noise frames against an unrelated noise template pass the threshold for a false rate of 5 %
    about that often, not more (and the test is not blind: not 10 times less)."""
    from caimg_nmf.stages import _motion_kernels as K
    rng = np.random.default_rng(9)
    h, w, limit = 32, 40, (8, 10)
    win, filt = K.taper_window(h, w), K.band_pass(h, w, 1.0)
    ref = K.reference_spectrum(rng.normal(0, 1, (h, w)).astype(np.float32), win, filt)
    threshold = K.significance_threshold(17 * 21, 0.05)
    peaks, _, z = K.find_peaks(rng.normal(0, 1, (3000, h, w)).astype(np.float32), ref, win, limit, 10, min_z=threshold)
    passed = z > threshold
    assert 0.005 <= passed.mean() <= 0.05, passed.mean()
    assert not peaks[~passed].any() and np.abs(peaks[passed]).max() > 1


@pytest.mark.parametrize("method", ["rigid", "piecewise"])
def test_a_closed_shutter_stretch_is_left_in_place(method):
    """The first 20 of 60 frames are dark (shutter closed: offset plus noise), the rest see moving
    texture: the dark frames keep shift 0 (their patches the rigid 0), the others are registered."""
    rng = np.random.default_rng(10)
    base = _base_image(rng, 64, 96)
    d = rng.uniform(-4, 4, (T, 2))
    mov = np.stack([ndimage.shift(base, d[t], order=3, mode="nearest") for t in range(T)])
    mov[:20] = 10.0
    mov = (mov + rng.normal(0, 3, mov.shape)).astype(np.float32)
    r = correct_motion(mov, _cfg(method=method, patch_size=32, patch_overlap=8))
    assert not r.shifts[:20].any()
    assert (r.peak_z[:20] <= r.min_peak_z).all() and (r.peak_z[20:] > r.min_peak_z).all()
    if method == "piecewise":
        assert not r.patch_shifts[:20].any()
    err = r.shifts[20:] + d[20:]
    assert np.sqrt(((err - err.mean(axis=0)) ** 2).sum(axis=1).mean()) < 0.2
