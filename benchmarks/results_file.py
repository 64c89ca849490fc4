"""RESULTS.md's generated blocks, each between a begin and an end marker.

A script that computes a block writes it in place (`--into benchmarks/RESULTS.md`), so a
table is never pasted by hand, and `tests/test_results.py` reads the same blocks back to
check them against the committed data. Only the text between the markers changes; the
prose around them is the author's.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from prune_gym.errors import PruneGymError

_IMAGE = re.compile(r"^!\[(?P<alt>[^\]]*)\]\((?P<target>[^)]+)\)$", re.MULTILINE)


def report_markers(study: str) -> tuple[str, str]:
    """The markers around `report.py --study <study>`'s tables."""
    return f"<!-- begin: benchmarks/report.py --study {study} -->", f"<!-- end: {study} report -->"


def compare_markers(study: str, reference: str) -> tuple[str, str]:
    """The markers around `compare.py <study> <reference>`'s table."""
    return f"<!-- begin: benchmarks/compare.py {study} {reference} -->", "<!-- end: compare report -->"


def matrix_markers() -> tuple[str, str]:
    """The markers around `matrix.py`'s table of every history method on every transfer scenario."""
    return "<!-- begin: benchmarks/matrix.py -->", "<!-- end: matrix report -->"


def deployable_markers() -> tuple[str, str]:
    """The markers around `deployable.py --report`'s table of the committed records."""
    return "<!-- begin: benchmarks/deployable.py --report benchmarks/data/deployable.jsonl -->", \
        "<!-- end: deployable report -->"


def _span(text: str, markers: tuple[str, str], path: Path) -> tuple[int, int]:
    begin, end = markers
    start = text.find(begin)
    stop = text.find(end, start + len(begin)) if start >= 0 else -1
    if start < 0 or stop < 0:
        raise PruneGymError(f"{path} has no block between {begin!r} and {end!r}; add the two markers where the "
                            f"block belongs")
    return start + len(begin), stop


def read_block(path: Path, markers: tuple[str, str]) -> str:
    """What `path` holds between the two markers."""
    text = path.read_text()
    start, stop = _span(text, markers, path)
    return text[start:stop]


def write_block(path: Path, markers: tuple[str, str], markdown: str, figures: Path | None = None) -> None:
    """Replace what `path` holds between the two markers by `markdown`. Its image links, relative to
    `figures` (where the script wrote the plots), are rewritten relative to `path`'s folder."""
    if figures is not None:
        folder = os.path.relpath(figures.resolve(), path.resolve().parent)
        markdown = _IMAGE.sub(lambda m: f"![{m['alt']}]({Path(folder, m['target']).as_posix()})", markdown)
    text = path.read_text()
    start, stop = _span(text, markers, path)
    path.write_text(text[:start] + "\n" + markdown.strip("\n") + "\n" + text[stop:])


def print_or_write(markdown: str, into: Path | None, markers: tuple[str, str], figures: Path | None = None) -> None:
    """A script's `--into`: write `markdown` into that file's block, or print it when there is none."""
    if into is None:
        print(markdown)
    else:
        write_block(into, markers, markdown, figures)
