"""Hostile configuration and command-line values (issue 14): each case a clean exit with a specific
message that names the flag (or the file and key) and the rule, inputs untouched.

The harness is tests/hostile.py.
"""
import dataclasses
import math
import sys
import typing

import numpy as np
import pytest

from hostile import expect_cli, expect_error, run_cli

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


@pytest.fixture
def movie64(tmp_path):
    """A 40-frame 64 x 64 movie (float32 .npy)."""
    path = tmp_path / "movie.npy"
    np.save(path, np.random.default_rng(0).random((40, 64, 64), dtype=np.float32))
    return path


@pytest.fixture
def result_file(tmp_path):
    """A small saved result: 2 cells, 20 frames of 16 x 16, frame_rate 10 Hz."""
    from caimg_nmf.io import Result

    rng = np.random.default_rng(1)
    fp = np.zeros((2, 16, 16), np.float32)
    fp[0, 2:6, 2:6] = 1
    fp[1, 9:13, 9:13] = 1
    traces = rng.random((2, 20), dtype=np.float32)
    path = tmp_path / "result.h5"
    Result(footprints=fp, traces=traces, dff=traces, roi_masks=fp > 0, mean_image=rng.random((16, 16)),
           attrs={"frame_rate": 10.0}).save(path)
    return path


def _result_with_attr(path, **attrs):
    import h5py

    with h5py.File(path, "a") as fh:
        for key, value in attrs.items():
            fh.attrs[key] = value
    return path


# --- item 1: a cell diameter that cannot fit the frame ---------------------------------------------
@pytest.mark.parametrize("how", ["flag", "set", "file"])
def test_cell_diameter_larger_than_the_field_is_refused_at_once(tmp_path, movie64, how):
    """--cell-diameter 5000 on a 64 x 64 movie (flag, --set or config file): refused before any work."""
    args = ["run", "-i", movie64, "-o", tmp_path / "out" / "r.h5", "--no-figures"]
    if how == "flag":
        args += ["--cell-diameter", "5000"]
    elif how == "set":
        args += ["--set", "input.cell_diameter=5000"]
    else:
        cfg = tmp_path / "c.toml"
        cfg.write_text("[input]\ncell_diameter = 5000\n")
        args.insert(1, cfg)
    expect_cli(args, protect=[movie64], message=[r"cell.diameter", r"5000", r"2 to 16 px", r"64 x 64"])
    assert not (tmp_path / "out" / "r.h5").exists()


def test_cell_diameter_larger_than_the_cropped_field(tmp_path, movie64):
    """A diameter that fits the movie but not the cropped frame (20 x 20 after preprocess.crop)."""
    expect_cli(["run", "-i", movie64, "-o", tmp_path / "r.h5", "--cell-diameter", "8",
                "--set", "preprocess.crop=[0, 20, 0, 30]"], protect=[movie64],
               message=[r"2 to 5 px", r"20 x 30", r"crop"])


def test_cell_diameter_below_two_pixels_after_binning(tmp_path, movie64):
    """--cell-diameter 3 with preprocess.spatial_bin = 2 is 1.5 px in the binned frame."""
    expect_cli(["run", "-i", movie64, "-o", tmp_path / "r.h5", "--cell-diameter", "3",
                "--set", "preprocess.spatial_bin=2"], protect=[movie64],
               message=[r"1\.5 px", r"spatial_bin = 2", r"4 to 16 px"])


def test_cell_diameter_larger_than_the_field_whole_method(tmp_path, movie64):
    """The whole-field method gets the same check (a 10000 px cell is a typo there too)."""
    expect_cli(["run", "-i", movie64, "-o", tmp_path / "r.h5", "--cell-diameter", "10000",
                "--set", "factorize.method=whole"], protect=[movie64], message=[r"2 to 16 px"])


def test_absurd_memory_need_is_refused_not_streamed(tmp_path, movie64, monkeypatch):
    """The estimate exceeds the machine's memory plus free scratch disk: MemoryBudgetError, exit 2."""
    from caimg_nmf import memory, pipeline

    monkeypatch.setattr(pipeline, "available_memory", lambda: 1024 ** 2)
    monkeypatch.setattr(memory, "total_memory", lambda: 1024 ** 2)
    monkeypatch.setattr(memory, "free_disk", lambda path: 1024 ** 2)
    out = expect_cli(["run", "-i", movie64, "-o", tmp_path / "r.h5", "--cell-diameter", "8"], protect=[movie64],
                     message=[r"needs about [\d.]+ MB", r"1\.0 MB of memory", r"1\.0 MB free"])
    assert "frames go to a temporary file" not in out.text  # refused, not streamed


def test_absurd_rank_is_refused_before_reading(tmp_path, movie64):
    """--rank 10**6 (whole method; 10**12 is over every integer key's limit): refused at once, naming the
    rank's limit, not estimated as terabytes."""
    expect_cli(["run", "-i", movie64, "-o", tmp_path / "r.h5", "--rank", str(10 ** 6)], protect=[movie64],
               message=[r"nmf\.rank = 1000000", r"min\(pixels, frames\) = min\(4096, 40\)"])


# --- item 2: flags named in their errors, the rule said ------------------------------------------
@pytest.mark.parametrize("value", ["0.1", "-5"])
def test_cell_diameter_too_small_says_the_rule_and_the_flag(tmp_path, movie64, value):
    """--cell-diameter 0.1 / -5: 'must be at least 2 px', prefixed by the flag, not <defaults>."""
    out = expect_cli(["run", "-i", movie64, "-o", tmp_path / "r.h5", "--cell-diameter", value],
                     protect=[movie64], message=[rf"--cell-diameter {value}: must be at least 2(\.0)? px"])
    assert "<defaults>" not in out.text and "expected a number" not in out.text


def test_rank_zero_names_the_flag(tmp_path, movie64):
    out = expect_cli(["run", "-i", movie64, "-o", tmp_path / "r.h5", "--rank", "0"], protect=[movie64],
                     message=[r"--rank 0: must be at least 1"])
    assert "<defaults>" not in out.text


def test_set_value_names_the_set(tmp_path, movie64):
    """--set detect.min_corr=5: the message names the --set given."""
    expect_cli(["run", "-i", movie64, "-o", tmp_path / "r.h5", "--set", "detect.min_corr=5"], protect=[movie64],
               message=[r"--set detect\.min_corr=5: must be at most 1"])


def test_value_in_config_file_names_file_and_key(tmp_path, movie64):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[input]\ncell_diameter = 0.5\n")
    expect_cli(["run", cfg, "-i", movie64, "-o", tmp_path / "r.h5"], protect=[movie64, cfg],
               message=[r"c\.toml: input\.cell_diameter = 0\.5: must be at least 2(\.0)? px"])


def test_cross_check_names_the_flags(tmp_path, movie64):
    """A rule between two keys, broken by --set: the message names the --set, not <defaults>."""
    out = expect_cli(["run", "-i", movie64, "-o", tmp_path / "r.h5", "--set", "rank.min_rank=30",
                      "--set", "rank.max_rank=3"], protect=[movie64],
                     message=[r"--set rank\.min_rank=30", r"larger than rank\.max_rank = 3"])
    assert "<defaults>" not in out.text


# --- item 3: non-finite and absurd floats ------------------------------------------------------------
@pytest.mark.parametrize("args,message", [
    (["--frame-rate", "inf"], r"--frame-rate inf: must be a finite number"),
    (["--frame-rate", "nan"], r"--frame-rate nan: .*NaN"),
    (["--frame-rate", "1e300"], r"--frame-rate 1e300: must be at most 10000(\.0)? Hz"),
    (["--frame-rate", "0"], r"--frame-rate 0: must be greater than 0"),
    (["--set", "input.frame_rate=inf"], r"--set input\.frame_rate=inf: must be a finite number"),
], ids=["inf", "nan", "1e300", "zero", "set-inf"])
def test_absurd_frame_rate_from_the_command_line(tmp_path, movie64, args, message):
    expect_cli(["run", "-i", movie64, "-o", tmp_path / "r.h5", *args], protect=[movie64], message=message)


def test_absurd_frame_rate_in_config_file(tmp_path, movie64):
    """frame_rate = 1e300 in a config file (an OverflowError, or 0 cells silently, before)."""
    cfg = tmp_path / "c.toml"
    cfg.write_text("[input]\nframe_rate = 1e300\n")
    expect_cli(["run", cfg, "-i", movie64, "-o", tmp_path / "r.h5"], protect=[movie64, cfg],
               message=[r"c\.toml: input\.frame_rate = 1e\+300: must be at most 10000(\.0)? Hz"])


def _float_keys():
    from caimg_nmf.config import SECTIONS

    for cls in SECTIONS:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            args = typing.get_args(hints[f.name]) or (hints[f.name],)
            if float in args:
                yield f"{cls.section}.{f.name}"


@pytest.mark.parametrize("key", list(_float_keys()))
def test_every_float_key_refuses_non_finite_and_absurd_values(key):
    """Every float key: inf and -inf are refused as not finite, NaN as NaN, and 1e300 (each key has a
    sane maximum) as too large."""
    from caimg_nmf.config import Config
    from caimg_nmf.errors import ConfigError

    for value, why in ((math.inf, r"must be a finite number"), (-math.inf, r"must be a finite number"),
                       (math.nan, r"NaN is not allowed"), (1e300, r"must be at most")):
        expect_error(Config().replace, {key: value}, error=ConfigError, message=[rf"{key} = ", why])


def test_float_key_bounds_are_declared_in_metadata():
    """One declared place: every float key states its minimum and maximum in its metadata."""
    from caimg_nmf.config import SECTIONS

    fields = {f"{cls.section}.{f.name}": f for cls in SECTIONS for f in dataclasses.fields(cls)}
    for key in _float_keys():
        assert fields[key].metadata["min"] is not None, f"{key} has no minimum"
        assert fields[key].metadata["max"] is not None, f"{key} has no maximum"


# --- item 4: --rank without a method means the whole-field method ---------------------------------
def test_rank_without_method_runs_the_whole_method(tmp_path):
    """The NMF primer's `run --input m.tif --rank 5`: runs whole-field NMF and says so."""
    from caimg_nmf.io import Result

    movie = tmp_path / "m.npy"
    np.save(movie, np.random.default_rng(2).random((30, 20, 20), dtype=np.float32))
    out = expect_cli(["run", "-i", movie, "-o", tmp_path / "r.h5", "--rank", "3", "--no-figures"],
                     protect=[movie], code=0, message=[r"factorize\.method = 'whole'", r"--rank"])
    assert "3 cells" in out.out
    result = Result.load(tmp_path / "r.h5")
    assert result.n_cells == 3 and result.config.factorize.method == "whole"


def test_rank_keyword_without_method_runs_the_whole_method():
    import caimg_nmf

    movie = np.random.default_rng(3).random((30, 20, 20), dtype=np.float32)
    result = caimg_nmf.run(movie=movie, rank=2, save=False, quiet=True)
    assert result.n_cells == 2 and result.config.factorize.method == "whole"


@pytest.mark.parametrize("how", ["file", "set"])
def test_rank_with_explicit_local_method_stays_an_error(tmp_path, movie64, how):
    """--rank 5 with factorize.method = 'local' given explicitly (config file or --set)."""
    args = ["run", "-i", movie64, "-o", tmp_path / "r.h5", "--rank", "5"]
    protect = [movie64]
    if how == "file":
        cfg = tmp_path / "c.toml"
        cfg.write_text('[factorize]\nmethod = "local"\n')
        args.insert(1, cfg)
        protect.append(cfg)
    else:
        args += ["--set", "factorize.method=local"]
    expect_cli(args, protect=protect, message=[r"a rank \(--rank 5\) was given", r"factorize\.method = 'local'",
                                               r"does not use"])


# --- item 5: the TOML writer escapes control characters ------------------------------------------
def test_toml_round_trip_of_every_control_character_and_non_ascii():
    from caimg_nmf.config import Config

    text = "".join(map(chr, range(0x20))) + "\x7f" + '\\"\'' + "é中😀" + "\u2028"
    # from_dict: a path written in a config is kept as written (an override would be made absolute)
    cfg = Config.from_dict({"input": {"path": text, "dataset": "a\nb"}})
    back = Config.from_dict(tomllib.loads(cfg.to_toml()))
    assert back.input.path == text and back.input.dataset == "a\nb"


def test_result_config_with_newline_in_the_input_path(tmp_path, result_file):
    """Result.load(...).config when the input path holds a newline (a TOMLDecodeError before)."""
    from caimg_nmf.config import Config
    from caimg_nmf.io import Result

    weird = str(tmp_path / "odd\nname\t.tif")
    _result_with_attr(result_file, config=Config().replace({"input.path": weird}).to_toml())
    assert Result.load(result_file).config.input.path == weird


# --- item 6: rank's flags ------------------------------------------------------------------------
@pytest.fixture
def matrix(tmp_path):
    path = tmp_path / "X.npy"
    np.save(path, np.random.default_rng(4).random((12, 10)))
    return path


@pytest.mark.parametrize("args,message", [
    (["--replicates", "0"], r"--replicates 0: must be at least 2"),
    (["--replicates", "1"], r"--replicates 1: must be at least 2"),
    (["--holdout", "0"], r"--holdout 0(\.0)?: must be greater than 0"),
    (["--holdout", "1.5"], r"--holdout 1\.5: must be at most 0\.5"),
    (["--holdout", "nan"], r"--holdout nan: .*NaN"),
    (["--n-jobs", "0"], r"--n-jobs 0: must be at least 1"),
    (["--n-jobs", "-2"], r"--n-jobs -2: must be at least 1"),
    (["--ranks", "banana"], r"--ranks banana: expected integers"),
    (["--ranks", "5:2"], r"--ranks 5:2: the last rank 2 is smaller than the first 5"),
    (["--methods", "vaf,magic"], r"--methods vaf,magic: 'magic' is not allowed"),
    (["--methods", "vaf,vaf"], r"--methods vaf,vaf: each method at most once"),
    (["--seed", "-1"], r"--seed -1: must be at least 0"),
], ids=["replicates0", "replicates1", "holdout0", "holdout1.5", "holdout-nan", "jobs0", "jobs-neg", "ranks-word",
        "ranks-reversed", "methods", "methods-twice", "seed"])
def test_rank_flags_are_checked(tmp_path, matrix, args, message):
    expect_cli(["rank", matrix, "-o", tmp_path / "sel", *args], protect=[matrix], message=message)
    assert not (tmp_path / "sel").exists()


def test_rank_set_names_the_set(tmp_path, movie64):
    """caimg-nmf rank MOVIE --set rank.holdout=0.9: the message names the --set, not <defaults>."""
    out = expect_cli(["rank", movie64, "-o", tmp_path / "sel", "--set", "rank.holdout=0.9"], protect=[movie64],
                     message=[r"--set rank\.holdout=0\.9: must be at most 0\.5"])
    assert "<defaults>" not in out.text


def test_set_unknown_key_names_the_set(tmp_path, movie64):
    expect_cli(["run", "-i", movie64, "-o", tmp_path / "r.h5", "--set", "nmf.rnk=3"], protect=[movie64],
               message=[r"--set nmf\.rnk=3: unknown config key 'nmf\.rnk'", r"Valid keys in \[nmf\]"])


# --- item 7: figures ------------------------------------------------------------------------------
@pytest.mark.parametrize("value", [np.nan, "fast", -3.0, np.inf], ids=["nan", "string", "negative", "inf"])
def test_figures_on_a_result_with_a_bad_frame_rate(tmp_path, result_file, value):
    _result_with_attr(result_file, frame_rate=value)
    expect_cli(["figures", result_file, "--out", tmp_path / "figs"], protect=[result_file],
               message=[r"result\.h5", r"attribute frame_rate = "])
    assert not list((tmp_path / "figs").glob("*.png")) if (tmp_path / "figs").exists() else True


def test_result_frame_rate_property_refuses_nan(result_file):
    from caimg_nmf.io import Result
    from caimg_nmf.errors import InputError

    result = Result.load(_result_with_attr(result_file, frame_rate=np.nan))
    expect_error(lambda: result.frame_rate, error=InputError, message=r"frame_rate = nan")


@pytest.mark.parametrize("dpi", ["0", "100000"])
def test_figures_dpi_out_of_the_configs_bounds(tmp_path, result_file, dpi):
    expect_cli(["figures", result_file, "--out", tmp_path / "figs", "--dpi", dpi], protect=[result_file],
               message=[rf"--dpi {dpi}: must be at (least 50|most 1200)"])


def test_figures_movie_of_the_wrong_shape(tmp_path, result_file):
    """--movie whose frames are 8 x 8 for a result of 16 x 16 frames: an error naming both shapes."""
    movie = tmp_path / "wrong.npy"
    np.save(movie, np.zeros((20, 8, 8), np.float32))
    expect_cli(["figures", result_file, "--out", tmp_path / "figs", "--movie", movie, "--format", "png"],
               protect=[result_file, movie], message=[r"wrong\.npy", r"\(20, 8, 8\)", r"\(20, 16, 16\)"])


@pytest.mark.parametrize("content,bad", [
    ("# a readme\nThis is not a style\n", r"line 2"),
    ("font.size: 9\nfont.sizee: 9\n", r"font\.sizee"),
    ("lines.linewidth: thick\n", r"lines\.linewidth"),
], ids=["prose", "unknown-key", "bad-value"])
def test_figures_style_that_is_not_a_style(tmp_path, result_file, content, bad):
    """--style pointing at any text file: refused naming the file and the bad line/key; matplotlib quiet."""
    style = tmp_path / "notes.txt"
    style.write_text(content)
    out = expect_cli(["--quiet", "figures", result_file, "--out", tmp_path / "figs", "--style", style],
                     protect=[result_file, style], message=[r"notes\.txt", bad])
    assert "Bad key" not in out.text and "Bad value" not in out.text


def test_run_refuses_a_bad_figures_style_before_the_analysis(tmp_path, movie64):
    style = tmp_path / "mine.mplstyle"
    style.write_text("font.sizee: 9\n")
    out = expect_cli(["run", "-i", movie64, "-o", tmp_path / "r.h5", "--cell-diameter", "8",
                      "--set", f"figures.style={str(style)!r}"], protect=[movie64, style],
                     message=[r"mine\.mplstyle", r"font\.sizee"])
    assert "read frames" not in out.text and not (tmp_path / "r.h5").exists()


# --- item 8: help --------------------------------------------------------------------------------
def test_run_help_says_what_happens_when_values_are_omitted():
    out = run_cli(["run", "--help"])
    text = " ".join(out.out.split())
    assert out.code == 0
    assert "estimated from the movie when omitted" in text
    assert "metadata" in text and "10 Hz" in text


# --- absurd integers: every integer key has a declared maximum ---------------------------------
@pytest.mark.parametrize("setting, limit", [("detect.tile_size=1000000000000000000", "65536"),
                                            ("nmf.seed=99999999999999", "2147483647"),
                                            ("nmf.replicates=1000000", "10000"),
                                            ("detect.reseed_passes=500", "20")])
def test_absurd_integer_is_refused_with_its_limit(tmp_path, movie64, setting, limit):
    """--set detect.tile_size=10**18 (or another absurd count) ran as if it were sane."""
    expect_cli(["run", "-i", movie64, "-o", tmp_path / "r.h5", "--set", setting], protect=[movie64],
               message=[rf"--set {setting.split('=')[0]}=\d+: must be at most {limit}\b"])
    assert not (tmp_path / "r.h5").exists()


def test_every_integer_key_declares_a_maximum():
    import dataclasses
    import typing

    from caimg_nmf.config import SECTIONS

    for cls in SECTIONS:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if hints[f.name] is int or (typing.get_origin(hints[f.name]) is typing.Union
                                        and int in typing.get_args(hints[f.name])):
                assert f.metadata["max"] is not None and f.metadata["max"] <= 2**31 - 1, f"{cls.section}.{f.name}"
