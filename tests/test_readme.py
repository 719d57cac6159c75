"""The READMEs as a new user reads them (issue 14): every code block runs as written, and every
config key and command-line flag they (and the comments of the shipped configs) mention exists.

How a fenced code block is run, by the language after its opening fence:

- ``python``: executed in a scratch folder holding copies of the repository's ``configs/`` and
  ``sample_data/``, as if run from the repository root (so that nothing is written into the clone).
- no language, ``sh``, ``bash`` or ``console``: one command per line, in the same scratch folder.
  ``caimg-nmf ...`` runs through the CLI in this process and must exit 0, without a traceback; any
  other command fails this test (add a rule here rather than leave a block unchecked). ``&&`` joins
  steps of one line; ``#`` starts a comment.
- A block right after a line ``<!-- no-test: reason -->`` (other ``<!-- ... -->`` lines, such as the
  ``<!-- ci:demo -->`` markers that .ci/run reads, may stand between) is not run: it shows as skipped,
  with its reason, in pytest's summary.
"""
from __future__ import annotations

import dataclasses
import re
import shlex
import shutil
from pathlib import Path

import pytest

from hostile import run_cli

REPO = Path(__file__).resolve().parent.parent
READMES = (REPO / "README.md", REPO / "sample_data" / "README.md")
SHELL_LANGUAGES = ("", "sh", "bash", "console")
NO_TEST = re.compile(r"<!--\s*no-test:\s*(.+?)\s*-->")
COMMENT = re.compile(r"\s*<!--.*-->\s*$")


@dataclasses.dataclass
class Block:
    readme: Path
    line: int          # 1-based line of the opening fence
    language: str
    code: str
    no_test: str       # the reason given in a <!-- no-test: ... --> marker, or ""

    @property
    def where(self) -> str:
        return f"{self.readme.relative_to(REPO)}:{self.line}"


def fenced_blocks(path: Path) -> list[Block]:
    """The fenced code blocks of a Markdown file, each with the no-test reason marked above it."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks, i = [], 0
    while i < len(lines):
        if not lines[i].startswith("```"):
            i += 1
            continue
        language, start = lines[i][3:].strip(), i
        end = next((j for j in range(i + 1, len(lines)) if lines[j].startswith("```")), None)
        assert end is not None, f"{path.name}:{i + 1}: code block never closed"
        reason, k = "", start - 1
        while k >= 0 and COMMENT.match(lines[k]):  # the comment lines right above the fence
            reason = reason or (m.group(1) if (m := NO_TEST.search(lines[k])) else "")
            k -= 1
        blocks.append(Block(path, start + 1, language, "\n".join(lines[start + 1:end]), reason))
        i = end + 1
    return blocks


BLOCKS = [b for path in READMES for b in fenced_blocks(path)]


def _param(block: Block):
    marks = [pytest.mark.skip(reason=f"{block.where} no-test: {block.no_test}")] if block.no_test else \
        [pytest.mark.slow] * ("caimg-nmf " in block.code or "caimg_nmf.run(" in block.code)
    return pytest.param(block, id=block.where, marks=marks)


@pytest.fixture
def scratch(tmp_path, monkeypatch):
    """A working folder that looks like the repository root: copies of configs/ and sample_data/."""
    for name in ("configs", "sample_data"):
        shutil.copytree(REPO / name, tmp_path / name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run_shell_line(line: str, cwd: Path, where: str) -> None:
    for step in line.split("&&"):
        words = shlex.split(step, comments=True)
        if not words:
            continue
        if words[0] != "caimg-nmf":
            pytest.fail(f"{where}: no rule to run {step.strip()!r}; add one to tests/test_readme.py or mark "
                        "the block <!-- no-test: reason -->")
        outcome = run_cli(words[1:], cwd=cwd)
        assert outcome.code == 0, f"{where}: {step.strip()!r} exited {outcome.code}:\n{outcome.text}"
        assert "Traceback" not in outcome.text, outcome.text


@pytest.mark.parametrize("block", [_param(b) for b in BLOCKS])
def test_readme_block_runs(block, scratch):
    if block.language == "python":
        exec(compile(block.code, block.where, "exec"), {"__name__": "__readme__"})
    elif block.language in SHELL_LANGUAGES:
        for offset, line in enumerate(block.code.splitlines(), start=1):
            run_shell_line(line, scratch, f"{block.readme.name}:{block.line + offset}")
    else:
        pytest.fail(f"{block.where}: no rule to run a {block.language!r} block; mark it "
                    "<!-- no-test: reason --> or add a rule to tests/test_readme.py")


def test_readme_blocks_found_and_most_run():
    """The parser sees the README's blocks (a broken parser must not make every test vacuous)."""
    readme = [b for b in BLOCKS if b.readme.name == "README.md" and b.readme.parent == REPO]
    run = [b for b in readme if not b.no_test]
    assert any(b.language == "python" for b in run)
    assert sum("caimg-nmf " in b.code for b in run) >= 2


def test_no_test_marker_is_seen_and_other_comments_do_not_hide_it(tmp_path):
    md = tmp_path / "x.md"
    md.write_text("text\n<!-- no-test: why -->\n<!-- ci:demo -->\n```\nrm -rf /\n```\n\n<!-- other -->\n```python\n"
                  "x = 1\n```\n", encoding="utf-8")
    first, second = fenced_blocks(md)
    assert (first.no_test, first.line, first.code) == ("why", 4, "rm -rf /")
    assert (second.no_test, second.language, second.code) == ("", "python", "x = 1")


def test_ci_commands_unchanged():
    """.ci/run reads the first `pip ...` line after each ci marker; they must stay these two."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    for marker, command in (("ci:demo", "pip install . && caimg-nmf demo"),
                            ("ci:test", 'pip install ".[test]" && pytest')):
        after = text.split(f"<!-- {marker} -->", 1)[1]
        assert next(ln for ln in after.splitlines() if ln.startswith("pip ")) == command


# --- every config key and CLI flag the README mentions exists ------------------------------------------

def _config_keys() -> dict[str, set[str]]:
    from caimg_nmf.batch.config import BatchSection
    from caimg_nmf.config import SECTIONS

    keys = {cls.section: {f.name for f in dataclasses.fields(cls)} for cls in SECTIONS}
    keys["batch"] = {f.name for f in dataclasses.fields(BatchSection)} | {"override"}  # [[batch.override]]
    return keys


# Words in the README that look like section.key but are file names.
FILE_NAMES = ("rank.py",)


def _readme_code() -> str:
    """Everything in code: inline `spans` and fenced blocks of every README, and the comments of the
    shipped configs (which name keys and commands too)."""
    out = []
    for path in READMES:
        text = path.read_text(encoding="utf-8")
        out += [b.code for b in fenced_blocks(path)]
        out += re.findall(r"`([^`\n]+)`", re.sub(r"```.*?```", "", text, flags=re.S))
    for path in sorted((REPO / "configs").glob("*.toml")):
        out += [ln.split("#", 1)[1] for ln in path.read_text(encoding="utf-8").splitlines() if "#" in ln]
    return "\n".join(out)


def test_readme_config_keys_exist():
    keys = _config_keys()
    code = _readme_code()
    sections = "|".join(keys)
    dotted = re.findall(rf"(?<![\w./-])({sections})\.([A-Za-z_]\w*)", code)
    bracketed = re.findall(r"(?<![\w.\"'])\[\[?([a-z_]+)(?:\.(\w+))?\]\]?(?:[ \t]+(\w+))?", code)
    mentioned = {(s, k) for s, k in dotted if f"{s}.{k}" not in FILE_NAMES}
    mentioned |= {(s, k or key) for s, k, key in bracketed}
    assert len(mentioned) > 15  # the README names many keys; a broken pattern must not pass vacuously
    unknown = sorted(f"{s}.{k}" if k else f"[{s}]" for s, k in mentioned
                     if s not in keys or (k and k not in keys[s]))
    assert not unknown, f"README or configs/ mention config keys that do not exist (see caimg-nmf config): {unknown}"


def _subcommand_flags() -> dict[str, set[str]]:
    from caimg_nmf.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.choices and "run" in a.choices)  # the subcommands
    return {name: set(p._option_string_actions) | set(parser._option_string_actions)
            for name, p in sub.choices.items()}


def _commands(code: str):
    """(subcommand, rest of the command) for every `caimg-nmf SUB ...`; indented lines continue one."""
    last = None
    for line in code.splitlines():
        if m := re.search(r"caimg-nmf\s+([a-z]+)(.*)", line):
            last = m.group(1)
            yield last, m.group(2)
        elif last and line.startswith(" ") and line.strip().startswith("["):
            yield last, line
        else:
            last = None


def test_readme_flags_exist():
    flags = _subcommand_flags()
    seen, unknown = 0, []
    for command, rest in _commands(_readme_code()):
        if command not in flags:
            unknown.append(f"caimg-nmf {command}")
            continue
        for flag in re.findall(r"(?<![\w-])--[a-z][\w-]*", rest):
            seen += 1
            if flag not in flags[command]:
                unknown.append(f"caimg-nmf {command} {flag}")
    assert seen > 20  # the synopsis alone names more; a broken pattern must not pass vacuously
    assert not unknown, f"README or configs/ mention commands or flags that --help does not know: {unknown}"


def test_readme_lone_flags_exist():
    """A flag named on its own (`--iou`) is one of caimg-nmf's, or of the example scripts it names."""
    known = set().union(*_subcommand_flags().values())
    scripts = "\n".join(p.read_text(encoding="utf-8") for p in sorted((REPO / "examples").glob("*.py")))
    lone = re.findall(r"^(--[a-z][\w-]*)", _readme_code(), flags=re.M)
    assert len(lone) > 10
    unknown = sorted({f for f in lone if f not in known and f'"{f}"' not in scripts})
    assert not unknown, f"README names flags that neither caimg-nmf nor examples/*.py know: {unknown}"
