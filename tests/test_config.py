from pathlib import Path

import pytest

from caimg_nmf.config import Config, load_config, parse_override, describe_defaults, read_toml
from caimg_nmf.errors import ConfigError


def write(tmp_path, text, name="c.toml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_defaults_documented_and_round_trip(tmp_path):
    cfg = Config()
    text = describe_defaults()
    for section, keys in cfg.to_dict().items():
        assert f"[{section}]" in text
        for key in keys:
            assert f"{key} = " in text
    again = load_config(write(tmp_path, cfg.to_toml()))
    assert again == cfg


def test_values_from_file_and_overrides(tmp_path):
    p = write(tmp_path, '[nmf]\nrank = 12\nsolver = "mu"\n[input]\npath = "movie.tif"\n')
    cfg = load_config(p, {"nmf.replicates": 4})
    assert (cfg.nmf.rank, cfg.nmf.solver, cfg.nmf.replicates) == (12, "mu", 4)
    assert cfg.resolve_path(cfg.input.path) == tmp_path / "movie.tif"
    assert cfg.input.path == "movie.tif"  # not rewritten in place


@pytest.mark.parametrize("text, expected", [
    ("[nmf]\nrnk = 3\n", ["c.toml", "rnk", "[nmf]", "rank, solver"]),
    ("[nmfx]\nrank = 3\n", ["unknown section [nmfx]", "nmf"]),
    ("[nmf]\nrank = 'five'\n", ["nmf.rank", "integer"]),
    ("[nmf]\nrank = 0\n", ["nmf.rank", "at least 1"]),
    ("[nmf]\nsolver = 'newton'\n", ["nmf.solver", "hals, mu, als, anls"]),
    ("[input]\naxes = 'XYT'\n", ["input.axes", "TYX, YXT"]),
    ("[preprocess]\ncrop = [0, 10]\n", ["preprocess.crop", "4"]),
    ("[preprocess]\ncrop = [10, 5, 0, 8]\n", ["top must be < bottom"]),
    ("[nmf]\nbeta_loss = 'kullback-leibler'\n", ["solver = 'mu'"]),
    ("[output]\noverwrite = 'yes'\n", ["output.overwrite", "true or false"]),
    ("[nmf\nrank=1", ["not valid TOML"]),
    ("[curate]\nthreshold = 0.3\n", ["'threshold'", "[curate]", "use [rois] threshold"]),
    ("[detect]\nwindow_radius = 0.5\n", ["detect.window_radius", "0.8"]),
    ("[detect]\nmax_binned_frames = 5\n", ["detect.max_binned_frames = 5", "at least 10"]),
    ("[spikes]\norder = 3\n", ["spikes.order", "1, 2"]),
    ("[spikes]\nrise_time_s = 0.1\n", ["spikes.rise_time_s", "spikes.order = 2"]),
    ("[spikes]\norder = 2\ndecay_time_s = 1.0\n", ["both", "rise_time_s = 0.0"]),
])
def test_bad_configs_name_file_key_and_choices(tmp_path, text, expected):
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, text))
    for piece in expected:
        assert piece in str(err.value)


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.toml")


def test_parse_override():
    assert parse_override("nmf.rank=7") == ("nmf.rank", 7)
    assert parse_override("nmf.solver=mu") == ("nmf.solver", "mu")
    assert parse_override("preprocess.crop=[0, 8, 0, 8]") == ("preprocess.crop", [0, 8, 0, 8])
    with pytest.raises(ConfigError, match="section.key=value"):
        parse_override("nmf.rank")
    with pytest.raises(ConfigError, match="Valid keys in \\[nmf\\]"):
        parse_override("nmf.rnak=3")


def test_config_is_immutable():
    cfg = Config()
    with pytest.raises(Exception):
        cfg.nmf.rank = 3
    new = cfg.replace({"nmf.rank": 3})
    assert cfg.nmf.rank == 5 and new.nmf.rank == 3


# --- shipped configs (issue 14, part 5) ------------------------------------------------------------

SHIPPED_CONFIGS = sorted((Path(__file__).resolve().parent.parent / "configs").glob("*.toml"))


@pytest.mark.parametrize("path", SHIPPED_CONFIGS, ids=lambda p: p.name)
def test_shipped_config_loads_and_fixes_no_output(path):
    """A shipped config is a template for the user's recordings: a fixed output.path with overwrite
    would make every run with it silently replace the last result. The default output
    (./<input name>_caimg/result.h5) and the refusal to replace it must apply."""
    data = read_toml(path)
    if "batch" in data:
        from caimg_nmf.batch.config import load_batch

        load_batch(path)  # validates the batch section and every pipeline section
    else:
        load_config(path)
    assert "path" not in data.get("output", {}), f"{path.name} fixes output.path"
    assert "overwrite" not in data.get("output", {}), f"{path.name} sets output.overwrite"


def test_shipped_configs_found():
    assert {p.name for p in SHIPPED_CONFIGS} >= {"demo.toml", "tiff_recording.toml", "hdf5_recording.toml"}


# --- relative paths: in a config file relative to the file, given any other way to the working folder ---

_SMALL_RUN = """
[input]
path = "movie.tif"
frame_rate = 10.0
[motion]
method = "none"
[factorize]
method = "whole"
[nmf]
rank = 2
replicates = 1
[rank]
replicates = 2
[figures]
enabled = false
"""


@pytest.fixture
def two_folders(tmp_path, monkeypatch):
    """cfg/c.toml (input.path = "movie.tif", a 20 x 24 movie beside it) and work/rel.tif (a 16 x 28
    movie), with work/ the working folder. The frame shape tells which movie was analysed."""
    import tifffile

    from caimg_nmf.synthetic import make_movie

    cfg_dir, work = tmp_path / "cfg", tmp_path / "work"
    cfg_dir.mkdir()
    work.mkdir()
    for path, shape in ((cfg_dir / "movie.tif", (20, 24)), (work / "rel.tif", (16, 28))):
        movie = make_movie(2, shape, 60, cell_diameter=6.0, seed=1).movie
        tifffile.imwrite(path, (movie * 1000 + 100).astype("uint16"))
    (cfg_dir / "c.toml").write_text(_SMALL_RUN)
    monkeypatch.chdir(work)
    return cfg_dir, work


def test_path_in_config_file_is_relative_to_the_file(two_folders):
    import caimg_nmf

    cfg_dir, work = two_folders
    cfg = load_config(cfg_dir / "c.toml")
    assert cfg.resolve_path(cfg.input.path) == cfg_dir / "movie.tif"
    result = caimg_nmf.run(cfg_dir / "c.toml", save=False, quiet=True)
    assert result.frame_shape == (20, 24)


@pytest.mark.parametrize("how", ["input=", "overrides=", "input__path="])
def test_run_input_given_in_code_is_relative_to_the_working_folder(two_folders, how):
    """The README's run(config, input="session1.tif"), with the config in another folder."""
    import caimg_nmf

    cfg_dir, work = two_folders
    kwargs = {"input=": {"input": "rel.tif"}, "overrides=": {"overrides": {"input.path": "rel.tif"}},
              "input__path=": {"input__path": "rel.tif"}}[how]
    result = caimg_nmf.run(cfg_dir / "c.toml", save=False, quiet=True, **kwargs)
    assert result.frame_shape == (16, 28)


def test_run_output_given_in_code_is_relative_to_the_working_folder(two_folders):
    import caimg_nmf

    cfg_dir, work = two_folders
    result = caimg_nmf.run(str(cfg_dir / "c.toml"), input="rel.tif", output="out/r.h5", quiet=True)
    assert result.path == work / "out" / "r.h5" and result.path.is_file()
    assert not (cfg_dir / "out").exists()


def test_replace_and_load_overrides_resolve_against_the_working_folder_when_given(two_folders, tmp_path,
                                                                                   monkeypatch):
    cfg_dir, work = two_folders
    from_file = load_config(cfg_dir / "c.toml")
    replaced = from_file.replace({"input.path": "rel.tif", "output.path": "x/r.h5"})
    loaded = load_config(cfg_dir / "c.toml", {"input.path": "rel.tif"})
    monkeypatch.chdir(tmp_path)  # later changes of folder do not move a path given earlier
    assert replaced.resolve_path(replaced.input.path) == work / "rel.tif"
    assert replaced.resolve_path(replaced.output.path) == work / "x" / "r.h5"
    assert loaded.resolve_path(loaded.input.path) == work / "rel.tif"
    assert from_file.resolve_path(from_file.input.path) == cfg_dir / "movie.tif"  # the file's own path


@pytest.mark.parametrize("flags", [["--input", "rel.tif"], ["--set", "input.path=rel.tif"],
                                   ["--set", "input.path='rel.tif'"]])
def test_cli_run_paths_are_relative_to_the_working_folder(two_folders, flags):
    from hostile import run_cli

    import caimg_nmf

    cfg_dir, work = two_folders
    out = run_cli(["run", cfg_dir / "c.toml", *flags, "--set", "output.path=res/r.h5", "--quiet"])
    assert out.code == 0, out.text
    result = caimg_nmf.Result.load(work / "res" / "r.h5")
    assert result.frame_shape == (16, 28)


def test_cli_rank_on_a_config_in_another_folder(two_folders):
    """`caimg-nmf rank CONFIG`: the config's movie (relative to the config), preprocessed as `run` does."""
    from hostile import run_cli

    cfg_dir, work = two_folders
    out = run_cli(["rank", cfg_dir / "c.toml", "--ranks", "1:3"])
    assert out.code == 0, out.text
    assert "movie movie.tif after preprocessing (60 frames of 20 x 24)" in out.text
    assert "recommended rank:" in out.text and (work / "rank_selection.h5").is_file()
    out = run_cli(["rank", cfg_dir / "c.toml", "--set", "input.path=rel.tif", "--ranks", "1:3",
                   "--overwrite"])
    assert out.code == 0, out.text
    assert "(60 frames of 16 x 28)" in out.text


def test_cli_rank_on_a_movie_relative_to_the_working_folder(two_folders):
    """`caimg-nmf rank MOVIE`: the default config on that movie, preprocessed as `run` does."""
    from hostile import run_cli

    out = run_cli(["rank", "rel.tif", "--ranks", "1:2", "--replicates", "2"])
    assert out.code == 0, out.text
    assert "movie rel.tif after preprocessing (60 frames of 16 x 28)" in out.text


def _facecolor_of_figures(folder: Path):
    import matplotlib.image

    pngs = sorted(folder.glob("*.png"))
    assert pngs, f"no figures in {folder}"
    return tuple(round(float(c), 2) for c in matplotlib.image.imread(pngs[0])[0, 0, :3])


@pytest.mark.parametrize("given, colour", [("file", (1.0, 0.0, 0.0)), ("--set", (0.0, 0.0, 1.0))])
def test_style_file_relative_like_other_paths(two_folders, given, colour):
    """figures.style = "my.mplstyle" written in a config file is the file beside the config (red here);
    --set figures.style=my.mplstyle names the one in the working folder (blue)."""
    from hostile import run_cli

    cfg_dir, work = two_folders
    (cfg_dir / "my.mplstyle").write_text("figure.facecolor: red\n")
    (work / "my.mplstyle").write_text("figure.facecolor: blue\n")
    text = _SMALL_RUN.replace("enabled = false", "formats = [\"png\"]\ndpi = 50")
    if given == "file":
        text += 'style = "my.mplstyle"\n'
    (cfg_dir / "c.toml").write_text(text)
    extra = ["--set", "figures.style=my.mplstyle"] if given == "--set" else []
    out = run_cli(["run", cfg_dir / "c.toml", "--output", "r.h5", "--quiet", *extra])
    assert out.code == 0, out.text
    assert _facecolor_of_figures(work / "figures") == colour
