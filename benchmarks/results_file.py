"""RESULTS.md's generated blocks, each between a begin and an end marker.

A script that computes a block writes it in place (`--into benchmarks/RESULTS.md`), so a
table is never pasted by hand, and `tests/test_results.py` reads the same blocks back to
check them against the committed data. Only the text between the markers changes; the
prose around them is the author's.
"""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path

from prune_gym.errors import PruneGymError

BEGIN = "<!-- begin: "  # every block's begin marker starts so
_IMAGE = re.compile(r"^!\[(?P<alt>[^\]]*)\]\((?P<target>[^)]+)\)$", re.MULTILINE)


def report_markers(study: str) -> tuple[str, str]:
    """The markers around `report.py --study <study>`'s tables."""
    return f"{BEGIN}benchmarks/report.py --study {study} -->", f"<!-- end: {study} report -->"


def compare_markers(study: str, reference: str) -> tuple[str, str]:
    """The markers around `compare.py <study> <reference>`'s table."""
    return f"{BEGIN}benchmarks/compare.py {study} {reference} -->", "<!-- end: compare report -->"


def matrix_markers() -> tuple[str, str]:
    """The markers around `matrix.py`'s table of every history method on every transfer scenario."""
    return f"{BEGIN}benchmarks/matrix.py -->", "<!-- end: matrix report -->"


def deployable_markers(record: str | Path) -> tuple[str, str]:
    """The markers around `deployable.py --report <record>`'s table."""
    return f"{BEGIN}benchmarks/deployable.py --report {record} -->", "<!-- end: deployable report -->"


def deployable_league_markers() -> tuple[str, str]:
    """The markers around `deployable_league.py --report`'s table of slim models fine-tuned over seeds."""
    return f"{BEGIN}benchmarks/deployable_league.py --report -->", "<!-- end: deployable league -->"


def library_markers() -> tuple[str, str]:
    """The markers around `library_study.py --report`'s table of the default search against those from scratch."""
    return f"{BEGIN}benchmarks/library_study.py --report -->", "<!-- end: library report -->"


def leaderboard_markers() -> tuple[str, str]:
    """The markers around `leaderboard.py`'s tables of every league entry on every standard task."""
    return f"{BEGIN}benchmarks/leaderboard.py -->", "<!-- end: leaderboard -->"


def surrogate_league_markers() -> tuple[str, str]:
    """The markers around `surrogate_league.py --report`'s tables of the league on the surrogate tasks."""
    return f"{BEGIN}benchmarks/surrogate_league.py --report -->", "<!-- end: surrogate league -->"


def fidelity_markers() -> tuple[str, str]:
    """The markers around `reward_fidelity.py --report`'s table of each evaluator against the fine-tuned accuracy."""
    return f"{BEGIN}benchmarks/reward_fidelity.py --report -->", "<!-- end: reward fidelity -->"


def library_sources_markers() -> tuple[str, str]:
    """The markers around `probes/library_sources.py --report`'s table of another network's first 30 trials by
    source."""
    return f"{BEGIN}benchmarks/probes/library_sources.py --report -->", "<!-- end: library sources -->"


def add_into_argument(parser: argparse.ArgumentParser) -> None:
    """The `--into RESULTS` option of a script that writes a block."""
    parser.add_argument("--into", type=Path, metavar="RESULTS",
                        help="write the Markdown into this file, between the markers that name this command (e.g. "
                             "benchmarks/RESULTS.md), instead of printing it")


def _span(text: str, markers: tuple[str, str], path: Path) -> tuple[int, int]:
    """Where the block's text starts and stops; refused unless the markers enclose one block, alone."""
    begin, end = markers
    start = text.find(begin)
    stop = text.find(end, start + len(begin)) if start >= 0 else -1
    if start < 0 or stop < 0:
        raise PruneGymError(f"{path} has no block between {begin!r} and {end!r}; add the two markers where the "
                            f"block belongs")
    if text.count(begin) > 1:
        raise PruneGymError(f"{path} has {begin!r} {text.count(begin)} times; a block has one place")
    if BEGIN in text[start + len(begin):stop]:
        raise PruneGymError(f"{path}: another block begins before {end!r} closes {begin!r}; restore the end "
                            f"marker of the block between them")
    return start + len(begin), stop


def read_block(path: Path, markers: tuple[str, str]) -> str:
    """What `path` holds between the two markers."""
    text = path.read_text()
    start, stop = _span(text, markers, path)
    return text[start:stop]


def _relink(markdown: str, figures: Path, path: Path) -> str:
    """`markdown`'s image links to files in `figures`, made relative to `path`'s folder."""
    folder = os.path.relpath(figures.resolve(), path.resolve().parent)
    if folder.split(os.sep)[0] == os.pardir:
        raise PruneGymError(f"the plots in {figures} are outside {path.parent}, where {path} could not link them; "
                            f"write them under it (--out)")

    def link(match: re.Match) -> str:
        target = match["target"]
        if re.match(r"^([a-z]+://|/)", target):  # a URL or an absolute path stays as it is
            return match[0]
        return f"![{match['alt']}]({Path(folder, target).as_posix()})"

    return _IMAGE.sub(link, markdown)


def write_block(path: Path, markers: tuple[str, str], markdown: str, figures: Path | None = None) -> None:
    """Replace what `path` holds between the two markers by `markdown`. Its image links, relative to
    `figures` (where the script wrote the plots), are rewritten relative to `path`'s folder."""
    if figures is not None:
        markdown = _relink(markdown, figures, path)
    text = path.read_text()
    start, stop = _span(text, markers, path)
    path.write_text(text[:start] + "\n" + markdown.strip("\n") + "\n" + text[stop:])


def print_or_write(markdown: str, into: Path | None, markers: tuple[str, str], figures: Path | None = None) -> None:
    """A script's `--into`: write `markdown` into that file's block, or print it when there is none."""
    if into is None:
        print(markdown)
    else:
        write_block(into, markers, markdown, figures)
