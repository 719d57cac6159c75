"""Every docstring example in the package runs and gives what it shows (doctest)."""
import doctest
import importlib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "caimg_nmf"


def _modules_with_examples():
    """Dotted names of the package's modules whose source holds a ``>>>`` example."""
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if ">>>" in path.read_text(encoding="utf-8"):
            parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
            names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


MODULES = _modules_with_examples()


def test_the_public_api_has_examples():
    """The modules behind caimg_nmf's public names (load_movie, run, nmf, NMF, select_rank) are among them."""
    assert {"caimg_nmf.io.movie", "caimg_nmf.pipeline", "caimg_nmf.nmf.api", "caimg_nmf.nmf.estimator",
            "caimg_nmf.rank"} <= set(MODULES), MODULES


@pytest.mark.filterwarnings("ignore::caimg_nmf.nmf.ConvergenceWarning")
@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)                    # an example that writes a file writes it here
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    report = []
    for test in finder.find(module, name):
        runner.run(test, out=report.append)
    assert runner.tries > 0, f"{name}: no example was run"
    assert runner.failures == 0, "".join(report)
