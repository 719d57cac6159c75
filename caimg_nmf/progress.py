"""Progress reporting: a bar on a terminal, plain log lines otherwise, nothing when quiet.

Library code reports through a :class:`Reporter`; messages also go to the ``caimg_nmf`` logger,
so lab scripts can route them with the standard logging module.
"""
from __future__ import annotations

import contextlib
import logging
import sys
import time

__all__ = ["Reporter", "logger"]

logger = logging.getLogger("caimg_nmf")
logger.addHandler(logging.NullHandler())  # a library: the application decides where logs go


class Reporter:
    """Where a run says what it is doing.

    Parameters
    ----------
    quiet : bool
        Say nothing (errors are still raised).
    stream : file, default sys.stderr
    bars : bool or None
        Progress bars (tqdm); None = only when ``stream`` is a terminal.
    """

    def __init__(self, quiet: bool = False, stream=None, bars: bool | None = None):
        self.quiet = quiet
        self.stream = stream if stream is not None else sys.stderr
        self.bars = (hasattr(self.stream, "isatty") and self.stream.isatty()) if bars is None else bars
        self.warnings: list[str] = []

    def info(self, message: str) -> None:
        logger.info(message)
        if not self.quiet:
            print(f"caimg-nmf: {message}", file=self.stream, flush=True)

    def warn(self, message: str) -> None:
        self.warnings.append(message)
        logger.warning(message)
        if not self.quiet:
            print(f"caimg-nmf: warning: {message}", file=self.stream, flush=True)

    @contextlib.contextmanager
    def task(self, description: str, total: int | None = None, unit: str = "frames"):
        """Context yielding ``advance(n)``; shows a bar on a terminal, or start/end log lines."""
        start = time.perf_counter()
        if self.quiet:
            yield lambda n=1: None
            return
        if self.bars and total:
            from tqdm import tqdm

            with tqdm(total=total, desc=description, unit=unit, file=self.stream, leave=False,
                      dynamic_ncols=True) as bar:
                yield bar.update
        else:
            done = [0]
            marks = {total * q // 4 for q in (1, 2, 3)} if total else set()

            def advance(n=1):
                before = done[0]
                done[0] += n
                if any(before < m <= done[0] for m in marks):
                    print(f"caimg-nmf: {description}: {done[0]}/{total} {unit}", file=self.stream, flush=True)

            self.info(f"{description} ...")
            yield advance
        self.info(f"{description}: done in {time.perf_counter() - start:.1f} s")
