"""RESULTS.md's generated tables are what the benchmark scripts compute from the committed data."""

from __future__ import annotations

import json
from pathlib import Path

from prune_gym.benchmarks.compare import compare
from prune_gym.benchmarks.data_export import DATA
from prune_gym.benchmarks.deployable import markdown
from prune_gym.benchmarks.report import write_report

RESULTS = Path(__file__).parents[1] / "benchmarks" / "RESULTS.md"
BEGIN, END = "<!-- begin: benchmarks/report.py --study league -->", "<!-- end: league report -->"
DEPLOYABLE = "<!-- begin: benchmarks/deployable.py --report benchmarks/data/deployable.jsonl -->"


def table_lines(markdown: str) -> list[str]:
    """The lines that carry figures: headings, scenario facts and table rows (not plots)."""
    return [line for line in markdown.splitlines() if line.startswith(("|", "###", "on "))]


def test_the_league_tables_in_results_are_recomputed_from_the_committed_data(tmp_path):
    text = RESULTS.read_text()
    assert BEGIN in text and END in text
    committed = text[text.index(BEGIN) + len(BEGIN):text.index(END)]
    recomputed = write_report("league", tmp_path, DATA)
    assert table_lines(committed) == table_lines(recomputed) != []


def test_the_deployable_table_in_results_is_recomputed_from_the_committed_records():
    text = RESULTS.read_text()
    committed = text[text.index(DEPLOYABLE) + len(DEPLOYABLE):text.index("<!-- end: deployable report -->")]
    records = [json.loads(line) for line in (DATA / "deployable.jsonl").read_text().splitlines()]
    assert table_lines(committed) == table_lines(markdown(records)) != []


def test_the_streams_comparison_in_results_is_recomputed_from_the_committed_data():
    text = RESULTS.read_text()
    begin, end = "<!-- begin: benchmarks/compare.py streams league -->", "<!-- end: compare report -->"
    committed = text[text.index(begin) + len(begin):text.index(end)]
    assert table_lines(committed) == table_lines(compare("streams", "league", DATA)) != []
