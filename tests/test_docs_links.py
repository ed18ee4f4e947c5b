"""Links into docs/: every ``docs/...`` path named in the code, tests, benchmarks, scripts or the
README exists in the repository; and the README opens with the two commands that set up and run
the project (``bash scripts/demo.sh``, then ``bash scripts/test.sh``).

Runs from a source checkout only (skipped where docs/ or README.md is absent, as in an installed
wheel).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCANNED = ("src", "tests", "benchmarks", "scripts", "README.md")
#: A path under docs/ as the text names it: not part of a longer path or URL (``x/docs/``,
#: ``readthedocs/``), ending before any ``#section``, quote, bracket or space.
DOCS_PATH = re.compile(r"(?<![\w./-])docs/[\w.-]+(?:/[\w.-]+)*")
SKIPPED_DIRS = {"__pycache__", "node_modules"}

pytestmark = pytest.mark.skipif(
    not (ROOT / "docs").is_dir() or not (ROOT / "README.md").is_file(),
    reason="not a source checkout (no docs/ or README.md)",
)


def _text_files():
    for name in SCANNED:
        top = ROOT / name
        paths = [top] if top.is_file() else sorted(top.rglob("*"))
        for path in paths:
            rel = path.relative_to(ROOT)
            if not path.is_file() or path.resolve() == Path(__file__).resolve():
                continue  # this file names example paths, not links
            if any(
                part in SKIPPED_DIRS or part.startswith(".") or part.endswith(".egg-info")
                for part in rel.parts
            ):
                continue
            try:
                yield rel, path.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                continue  # images and other binary files


def docs_links(text: str) -> list[tuple[int, str]]:
    """(line number, path) of every docs/ path in ``text``; a sentence's full stop is not part of it."""
    return [
        (number, match.group().rstrip("."))
        for number, line in enumerate(text.splitlines(), start=1)
        for match in DOCS_PATH.finditer(line)
    ]


def test_the_link_pattern_finds_paths_and_ignores_urls():
    text = (
        "see docs/model.md, docs/method.md#the-mollifier and docs/cluster.md.\n"
        "`docs/a/b.png` but not src/x/docs/y.md, https://readthedocs.io/docs/z.md or docs/\n"
    )
    assert docs_links(text) == [
        (1, "docs/model.md"),
        (1, "docs/method.md"),
        (1, "docs/cluster.md"),
        (2, "docs/a/b.png"),
    ]


def test_every_docs_path_named_exists():
    missing = [
        f"{rel}:{number}: {link}"
        for rel, text in _text_files()
        for number, link in docs_links(text)
        if not (ROOT / link).exists()
    ]
    if missing:
        pytest.fail("docs/ paths named but missing:\n" + "\n".join(missing), pytrace=False)


def _first_code_block(text: str) -> list[str]:
    """The non-empty lines of the first code block (indented by 4 spaces, or fenced with ```)."""
    block, fenced, previous_blank = [], False, True
    for line in text.splitlines():
        if line.startswith("```"):
            if fenced:
                return block
            fenced = True
        elif fenced:
            block.append(line)
        elif line.startswith("    ") and (block or previous_blank):
            block.append(line)
        elif block and line.strip():
            return block
        previous_blank = not line.strip()
    return block


def test_readme_starts_with_the_demo_and_the_tests():
    commands = [
        line.split("#", 1)[0].strip()
        for line in _first_code_block((ROOT / "README.md").read_text(encoding="utf-8"))
        if line.strip()
    ]
    assert commands[:2] == ["bash scripts/demo.sh", "bash scripts/test.sh"], commands
