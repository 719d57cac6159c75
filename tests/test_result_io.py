import h5py
import numpy as np
import pytest

from caimg_nmf.errors import InputError, OutputError
from caimg_nmf.io import Result


def make(K=3, H=10, W=12, T=50):
    rng = np.random.default_rng(0)
    return Result(rng.random((K, H, W)), rng.random((K, T)), rng.random((K, T)), rng.random((K, H, W)) > 0.5,
                  rng.random((H, W)), loss=np.linspace(1, 0.1, 7),
                  extras={"spikes": rng.random((K, T)), "rejected/reasons": ["too small", "low SNR"]},
                  attrs={"config": "[nmf]\nrank = 3\n", "frame_rate": 7.5, "input_path": "/x/m.tif"})


def test_round_trip_and_schema(tmp_path):
    r = make()
    p = r.save(tmp_path / "r.h5")
    q = Result.load(p)
    for name in ("footprints", "traces", "dff", "roi_masks", "mean_image", "loss"):
        np.testing.assert_array_equal(getattr(q, name), getattr(r, name).astype(getattr(q, name).dtype))
    assert q.get("rejected/reasons") == ["too small", "low SNR"]
    assert q.config.nmf.rank == 3 and q.frame_rate == 7.5
    with h5py.File(p) as f:  # the documented layout, as MATLAB's h5read sees it
        assert f["footprints"].shape == (3, 10, 12) and f["footprints"].dtype == np.float32
        assert f["roi_masks"].dtype == np.uint8 and f["nmf/loss"].shape == (7,)
        assert f.attrs["schema_version"] == 1
    assert [x.name for x in tmp_path.iterdir()] == ["r.h5"]  # no temp files left
    import os
    umask = os.umask(0)
    os.umask(umask)
    assert (p.stat().st_mode & 0o777) == (0o666 & ~umask)  # readable by the lab, not private


def test_half_precision_extras_are_written_as_float32(tmp_path):
    # curation keeps rejected footprints in float16 to save memory; MATLAB's h5read has no half type
    r = make()
    rejected = np.random.default_rng(1).random((4, 10, 12)).astype(np.float16)
    r.extras["rejected/footprints"] = rejected
    p = r.save(tmp_path / "r.h5")
    with h5py.File(p) as f:
        assert f["rejected/footprints"].dtype == np.float32
        np.testing.assert_array_equal(f["rejected/footprints"][()], rejected.astype(np.float32))
    assert r.extras["rejected/footprints"].dtype == np.float16   # the result in memory is unchanged


def test_zero_cells_is_valid(tmp_path):
    r = make(K=0)
    q = Result.load(r.save(tmp_path / "e.h5"))
    assert q.footprints.shape == (0, 10, 12) and q.traces.shape == (0, 50)


def test_inconsistent_shapes_rejected():
    r = make()
    with pytest.raises(InputError, match="inconsistent result shapes"):
        Result(r.footprints, r.traces[:2], r.dff, r.roi_masks, r.mean_image)


def test_failed_write_keeps_previous(tmp_path, monkeypatch):
    p = make().save(tmp_path / "r.h5")
    before = p.read_bytes()
    bad = make()
    bad.extras["broken"] = object()  # cannot be stored: the write fails midway
    with pytest.raises(Exception):
        bad.save(p)
    assert p.read_bytes() == before
    assert [x.name for x in tmp_path.iterdir()] == ["r.h5"]


def test_no_overwrite_and_unwritable(tmp_path):
    p = make().save(tmp_path / "r.h5")
    with pytest.raises(OutputError, match="already exists"):
        make().save(p, overwrite=False)
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    with pytest.raises(OutputError, match="cannot create the output folder"):
        make().save(blocker / "sub" / "r.h5")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        import os
        if os.geteuid() == 0:
            pytest.skip("root can write anywhere")
        with pytest.raises(OutputError, match="not writable"):
            make().save(ro / "r.h5")
    finally:
        ro.chmod(0o700)


def test_load_errors(tmp_path):
    with pytest.raises(InputError, match="not found"):
        Result.load(tmp_path / "none.h5")
    p = tmp_path / "other.h5"
    with h5py.File(p, "w") as f:
        f["x"] = 1
    with pytest.raises(InputError, match="not a valid caimg_nmf result"):
        Result.load(p)
