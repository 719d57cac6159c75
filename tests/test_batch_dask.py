"""executor = "dask": the same outputs and skip rules through dask.distributed (optional extra)."""
import numpy as np
import pytest

from test_batch import datasets, make_inputs, read_summary, write_batch


def test_dask_local_cluster_same_results_and_skip_rules(tmp_path):
    distributed = pytest.importorskip("distributed")
    from caimg_nmf.batch import run_batch

    raw = make_inputs(tmp_path, names=("m1", "m2"))
    (raw / "bad.tif").write_bytes(b"II*\x00 not a movie")
    batch = write_batch(tmp_path)  # executor = "serial" in the file; the client selects dask
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        summary = run_batch(batch, client=client, quiet=True)
    assert [r["status"] for r in summary.records] == ["failed", "ok", "ok"]
    assert "bad.tif" in summary.records[0]["reason"]
    out = tmp_path / "out"
    assert read_summary(out)["m1"]["n_cells"] == "3" and (out / "index.html").is_file()

    # the same batch run serially elsewhere gives the same datasets (to float32 rounding: the math
    # library splits products differently with another thread count); rerunning skips
    (tmp_path / "batch.toml").write_text((tmp_path / "batch.toml").read_text().replace('"out"', '"ref"'))
    run_batch(batch, quiet=True)
    for n in ("m1", "m2"):
        a, b = datasets(out / n / "result.h5"), datasets(tmp_path / "ref" / n / "result.h5")
        for k in a:
            np.testing.assert_allclose(a[k], b[k], rtol=1e-3, atol=1e-3 * max(1.0, float(np.abs(b[k]).max())),
                                       err_msg=k)
    (tmp_path / "batch.toml").write_text((tmp_path / "batch.toml").read_text().replace('"ref"', '"out"'))
    again = run_batch(batch, quiet=True)
    assert [r["status"] for r in again.records] == ["failed", "skipped", "skipped"]
