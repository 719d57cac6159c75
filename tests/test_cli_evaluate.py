"""``caimg-nmf evaluate``: a result file scored against ground truth in each supported format."""
import json

import numpy as np
import pytest

import caimg_nmf
from caimg_nmf.cli import main
from caimg_nmf.io.result import Result
from caimg_nmf.synthetic import footprints_to_masks, load_truth, sample_data_path

TRUTH_H5 = sample_data_path("five_cells_truth.h5")


@pytest.fixture(scope="module")
def result_path(tmp_path_factory):
    """The sample movie run once through the pipeline (5 cells on 64 x 64, 300 frames)."""
    out = tmp_path_factory.mktemp("evaluate") / "result.h5"
    caimg_nmf.run(input=sample_data_path("five_cells.tif"), output=out, method="whole", rank=5,
                  figures=False, quiet=True)
    return out


@pytest.fixture(scope="module")
def true_masks():
    return footprints_to_masks(load_truth(TRUTH_H5).footprints, 0.3)


def _value(text, name):
    line = next(l for l in text.splitlines() if l.strip().startswith(name))
    return line.split(None, len(name.split()))[-1]


def test_synthetic_truth_table_and_json(result_path, tmp_path, capsys):
    out = tmp_path / "sub" / "score.json"
    assert main(["evaluate", str(result_path), "--truth", str(TRUTH_H5), "--json", str(out)]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    text = captured.out
    assert _value(text, "detected cells") == "5" and _value(text, "true cells") == "5"
    assert _value(text, "hits") == "5"
    assert _value(text, "F1") == "1.000"
    assert _value(text, "precision") == "1.000 (5/5)" and _value(text, "recall") == "1.000 (5/5)"
    assert float(_value(text, "trace correlation")) > 0.9
    doc = json.loads(out.read_text())
    assert (doc["n_pred"], doc["n_true"], doc["n_matched"]) == (5, 5, 5)
    assert doc["precision"] == doc["recall"] == doc["f1"] == 1.0
    assert doc["trace_corr"] > 0.9 and f"{doc['trace_corr']:.3f}" == _value(text, "trace correlation")
    assert f"{doc['mean_iou']:.3f}" == _value(text, "mean IoU of hits")
    assert doc["footprint_cosine"] > 0.9 and doc["cosine"]["n_matched"] == 5
    assert sorted(t for _, t, _ in doc["matches"]) == [0, 1, 2, 3, 4]
    assert not [p for p in out.parent.iterdir() if p != out]  # no temporary file left behind


def test_quiet_prints_one_line(result_path, capsys):
    assert main(["evaluate", str(result_path), "--truth", str(TRUTH_H5), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert len(out.strip().splitlines()) == 1 and "F1 1.000" in out


def test_mask_stack_with_two_true_cells_dropped(result_path, true_masks, tmp_path, capsys):
    np.save(tmp_path / "three.npy", true_masks[[0, 2, 4]])
    out = tmp_path / "s.json"
    assert main(["evaluate", str(result_path), "--truth", str(tmp_path / "three.npy"), "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert _value(text, "precision") == "0.600 (3/5)" and _value(text, "recall") == "1.000 (3/3)"
    assert "trace correlation" not in text  # a mask stack has no traces
    doc = json.loads(out.read_text())
    assert doc["precision"] == pytest.approx(3 / 5) and doc["recall"] == 1.0 and doc["trace_corr"] is None


def test_regions_json_scores_as_the_mask_stack(result_path, true_masks, tmp_path, capsys):
    np.save(tmp_path / "truth.npy", true_masks)
    regions = [{"id": k, "coordinates": np.argwhere(m).tolist()} for k, m in enumerate(true_masks)]
    (tmp_path / "regions.json").write_text(json.dumps(regions))
    scores = []
    for name in ("truth.npy", "regions.json"):
        out = tmp_path / f"{name}.score.json"
        assert main(["evaluate", str(result_path), "--truth", str(tmp_path / name), "--json", str(out)]) == 0
        scores.append(json.loads(out.read_text()))
    capsys.readouterr()
    for key in ("n_pred", "n_true", "n_matched", "precision", "recall", "f1", "mean_iou", "matches"):
        assert scores[0][key] == scores[1][key], key
    assert scores[1]["f1"] == 1.0


def test_truth_on_another_frame_grid_names_both_shapes(result_path, tmp_path, capsys):
    np.save(tmp_path / "big.npy", np.ones((3, 256, 512), bool))
    assert main(["evaluate", str(result_path), "--truth", str(tmp_path / "big.npy")]) == 2
    err = capsys.readouterr().err
    assert "256 x 512" in err and "64 x 64" in err and "big.npy" in err and "result.h5" in err
    assert "Traceback" not in err


def test_regions_outside_the_result_frame(result_path, tmp_path, capsys):
    (tmp_path / "regions.json").write_text(json.dumps([{"id": 7, "coordinates": [[200, 300]]}]))
    assert main(["evaluate", str(result_path), "--truth", str(tmp_path / "regions.json")]) == 2
    err = capsys.readouterr().err
    assert "outside a 64x64 frame" in err and "64 x 64" in err


def test_missing_files(result_path, tmp_path, capsys):
    assert main(["evaluate", str(tmp_path / "nope.h5"), "--truth", str(TRUTH_H5)]) == 2
    assert "result file not found" in capsys.readouterr().err
    assert main(["evaluate", str(result_path), "--truth", str(tmp_path / "nope.npy")]) == 2
    assert "file not found" in capsys.readouterr().err


def test_trace_length_mismatch_skips_correlation_with_warning(result_path, tmp_path, capsys):
    r = Result.load(result_path)
    short = Result(r.footprints, r.traces[:, :150], r.dff[:, :150], r.roi_masks, r.mean_image,
                   attrs=dict(r.attrs))
    short.save(tmp_path / "binned.h5")
    assert main(["evaluate", str(tmp_path / "binned.h5"), "--truth", str(TRUTH_H5)]) == 0
    captured = capsys.readouterr()
    assert "300 frames" in captured.err and "150" in captured.err and "trace correlation skipped" in captured.err
    assert "trace correlation" not in captured.out and _value(captured.out, "F1") == "1.000"


def test_result_without_cells(result_path, tmp_path, capsys):
    r = Result.load(result_path)
    empty = Result(r.footprints[:0], r.traces[:0], r.dff[:0], r.roi_masks[:0], r.mean_image)
    empty.save(tmp_path / "empty.h5")
    out = tmp_path / "s.json"
    assert main(["evaluate", str(tmp_path / "empty.h5"), "--truth", str(TRUTH_H5), "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert _value(text, "detected cells") == "0" and _value(text, "hits") == "0"
    assert _value(text, "precision").startswith("0.000") and _value(text, "F1") == "0.000"
    doc = json.loads(out.read_text())
    assert doc["precision"] == doc["recall"] == doc["f1"] == 0.0


def test_active_recall_with_movie(result_path, capsys):
    movie = sample_data_path("five_cells.tif")
    assert main(["evaluate", str(result_path), "--truth", str(TRUTH_H5), "--movie", str(movie),
                 "--frame-rate", "10"]) == 0
    assert _value(capsys.readouterr().out, "recall (active)").startswith("1.000 (5 of 5")


def test_movie_with_other_frame_count_is_refused(result_path, tmp_path, capsys):
    import tifffile
    short = tmp_path / "short.tif"
    tifffile.imwrite(short, tifffile.imread(sample_data_path("five_cells.tif"))[:100])
    assert main(["evaluate", str(result_path), "--truth", str(TRUTH_H5), "--movie", str(short)]) == 2
    err = capsys.readouterr().err
    assert "100 frames" in err and "300" in err


@pytest.mark.parametrize("flag, value", [("--iou", "0"), ("--iou", "x"), ("--min-cosine", "1.5")])
def test_bad_thresholds_are_usage_errors(result_path, flag, value, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["evaluate", str(result_path), "--truth", str(TRUTH_H5), flag, value])
    assert exc.value.code == 2 and flag in capsys.readouterr().err


def test_hits_are_counted_by_origin(result_path, tmp_path, capsys):
    """A result that says how each cell was found (/cells/origin) is scored per origin too."""
    from caimg_nmf.io import Result
    r = Result.load(result_path)
    r.extras["cells/origin"] = ["activity"] * (r.n_cells - 2) + ["mean image"] * 2
    r.save(tmp_path / "with_origin.h5")
    assert main(["evaluate", str(tmp_path / "with_origin.h5"), "--truth", str(TRUTH_H5),
                 "--json", str(tmp_path / "s.json")]) == 0
    out = capsys.readouterr().out
    doc = json.loads((tmp_path / "s.json").read_text())
    hits = {int(p) for p, _, _ in doc["matches"]}
    want = {"activity": {"cells": r.n_cells - 2, "hits": len(hits - {r.n_cells - 2, r.n_cells - 1})},
            "mean image": {"cells": 2, "hits": len(hits & {r.n_cells - 2, r.n_cells - 1})}}
    assert doc["by_origin"] == want
    assert f"hits among mean image cells  {want['mean image']['hits']} of 2" in out
    assert main(["evaluate", str(result_path), "--truth", str(TRUTH_H5), "--json", str(tmp_path / "t.json")]) == 0
    assert json.loads((tmp_path / "t.json").read_text())["by_origin"] is None   # the whole method says nothing


def test_run_on_pure_noise_finds_no_cells_and_still_writes_figures(tmp_path):
    """The local method can find 0 cells; the run must still succeed (result and figures)."""
    from caimg_nmf.cli import main
    noise = np.random.default_rng(0).normal(100, 1, (60, 32, 40)).astype(np.float32)
    np.save(tmp_path / "noise.npy", noise)
    out = tmp_path / "r" / "result.h5"
    rc = main(["run", "--input", str(tmp_path / "noise.npy"), "--frame-rate", "10", "--cell-diameter", "6",
               "--set", "detect.min_pnr=1000", "--output", str(out), "--quiet"])   # no seed can pass
    assert rc == 0
    from caimg_nmf.io import Result
    assert Result.load(out).n_cells == 0
    assert any(p.suffix == ".png" for p in (out.parent / "figures").iterdir())


def test_movie_given_as_truth_is_refused(result_path, tmp_path, capsys):
    movie = np.random.default_rng(0).random((20, 64, 64)).astype(np.float32)
    np.save(tmp_path / "movie.npy", movie)
    assert main(["evaluate", str(result_path), "--truth", str(tmp_path / "movie.npy")]) == 2
    assert "other than 0 and 1" in capsys.readouterr().err
