"""Harness for hostile-input tests (issue 14): run a command as a user would, then check that it
failed cleanly and left every input as it was.

Each case states the exit code it expects, a specific message (regular expressions, all of which must
appear in what the command printed), and the files it must not touch. The harness asserts, for every
case: the exit code, no Python traceback on stdout or stderr, the messages, and that each protected
file (folders: every file below them; symlinks: the link and what it points to) has the same bytes,
size and mtime afterwards.

    from hostile import expect_cli
    expect_cli(["run", "-i", movie, "-o", movie, "--overwrite"], protect=[movie],
               message=r"output .* is the input")
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import os
import re
import subprocess
import sys
from pathlib import Path

__all__ = ["Outcome", "snapshot", "run_cli", "expect_cli", "expect_error"]


@dataclasses.dataclass
class Outcome:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


def _files(path: Path):
    path = Path(path)
    if path.is_symlink():
        yield path
        target = path.resolve()
        if target.exists():
            yield from _files(target)
    elif path.is_dir():
        for p in sorted(path.rglob("*")):
            if p.is_file() or p.is_symlink():
                yield p
    elif path.exists():
        yield path


def snapshot(paths) -> dict:
    """{file: (sha256, size, mtime_ns)} for every file under ``paths`` (links recorded as their target)."""
    state = {}
    for root in paths:
        for p in _files(Path(root)):
            st = os.lstat(p)
            if p.is_symlink():
                state[str(p)] = ("link", os.readlink(p), st.st_mtime_ns)
                continue
            with open(p, "rb") as fh:
                digest = hashlib.sha256(fh.read()).hexdigest()
            state[str(p)] = (digest, st.st_size, st.st_mtime_ns)
    return state


def run_cli(args, *, cwd=None, subprocess_run: bool = False, env=None, timeout: float = 300) -> Outcome:
    """Run ``caimg-nmf ARGS``: in this process (fast; argparse exits are caught), or in a subprocess
    as a user would (``subprocess_run=True``, for signals, crashes and interpreter-level failures)."""
    args = [str(a) for a in args]
    if subprocess_run:
        p = subprocess.run([sys.executable, "-m", "caimg_nmf.cli", *args], capture_output=True, text=True,
                           cwd=cwd, env=env, timeout=timeout)
        return Outcome(p.returncode, p.stdout, p.stderr)
    from caimg_nmf.cli import main

    out, err = io.StringIO(), io.StringIO()
    old = os.getcwd()
    try:
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(args)
            except SystemExit as exc:  # argparse usage errors and --help
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    finally:
        os.chdir(old)
    return Outcome(int(code), out.getvalue(), err.getvalue())


def _check_messages(text: str, message) -> None:
    for pattern in ([message] if isinstance(message, str) else list(message or ())):
        assert re.search(pattern, text, re.IGNORECASE | re.DOTALL), \
            f"expected the message /{pattern}/ in:\n{text}"


def expect_cli(args, *, protect=(), message=(), code: int = 2, cwd=None, subprocess_run: bool = False,
               env=None) -> Outcome:
    """Run the CLI and assert a clean outcome: ``code``, no traceback, ``message``, ``protect`` untouched."""
    before = snapshot(protect)
    outcome = run_cli(args, cwd=cwd, subprocess_run=subprocess_run, env=env)
    after = snapshot(protect)
    assert outcome.code == code, f"exit {outcome.code}, expected {code}:\n{outcome.text}"
    assert "Traceback" not in outcome.text, outcome.text
    _check_messages(outcome.text, message)
    assert before == after, f"an input was changed: {sorted(set(before.items()) ^ set(after.items()))}"
    return outcome


def expect_error(func, *args, error=None, message=(), protect=(), **kwargs):
    """Call ``func(*args, **kwargs)`` from Python; assert it raises ``error`` (default CaimgError) with
    ``message``, and that ``protect`` is untouched. Returns the exception."""
    from caimg_nmf.errors import CaimgError

    error = error or CaimgError
    before = snapshot(protect)
    try:
        func(*args, **kwargs)
    except error as exc:
        caught = exc
    else:
        raise AssertionError(f"{getattr(func, '__name__', func)} did not raise {error.__name__}")
    _check_messages(str(caught), message)
    assert snapshot(protect) == before, "an input was changed"
    return caught
