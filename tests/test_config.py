import pytest

from caimg_nmf.config import Config, load_config, parse_override, describe_defaults
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
