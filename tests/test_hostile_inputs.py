"""Hostile inputs (issue 14): each case a clean exit with a specific message, inputs untouched.

The harness is tests/hostile.py. Cases about outputs, readers, config and batch live in the
test_hostile_*.py modules beside this one.
"""
import numpy as np
import pytest

from hostile import expect_cli


@pytest.fixture
def small_movie(tmp_path):
    path = tmp_path / "movie.npy"
    np.save(path, np.random.default_rng(0).random((30, 24, 24), dtype=np.float32))
    return path


def test_missing_input_file(tmp_path):
    expect_cli(["run", "-i", tmp_path / "nope.tif", "-o", tmp_path / "r.h5"], message=r"not found: .*nope\.tif")


def test_unknown_config_key_names_the_valid_keys(tmp_path, small_movie):
    expect_cli(["run", "-i", small_movie, "-o", tmp_path / "r.h5", "--set", "detect.nonsense=1"],
               protect=[small_movie], message=[r"unknown config key 'detect\.nonsense'", "Valid keys"])


def test_empty_input_file_is_said_to_be_empty(tmp_path):
    """A 0-byte movie (an interrupted copy) was reported as 'not a TIFF file: header=b'''."""
    path = tmp_path / "movie.tif"
    path.touch()
    expect_cli(["run", "-i", path, "-o", tmp_path / "r.h5"], protect=[path], message=[r"movie\.tif is empty \(0 bytes\)"])
    assert not (tmp_path / "r.h5").exists()


def test_fifo_as_input_is_named_as_such(tmp_path):
    """A named pipe given as the movie: refused without reading from it (which would block)."""
    import os

    path = tmp_path / "movie.tif"
    os.mkfifo(path)
    expect_cli(["run", "-i", path, "-o", tmp_path / "r.h5"], message=[r"not a regular file \(a pipe"])
