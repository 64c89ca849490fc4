"""RESULTS.md's generated tables are what the benchmark scripts compute from the committed data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from prune_gym.benchmarks.compare import compare
from prune_gym.benchmarks.data_export import DATA
from prune_gym.benchmarks.deployable import markdown
from prune_gym.benchmarks.report import write_report

RESULTS = Path(__file__).parents[1] / "benchmarks" / "RESULTS.md"


def table_lines(markdown: str) -> list[str]:
    """The lines that carry figures: headings, scenario facts and table rows (not plots)."""
    return [line for line in markdown.splitlines() if line.startswith(("|", "###", "on "))]


def committed_block(begin: str, end: str) -> str:
    """What RESULTS.md holds between two markers."""
    text = RESULTS.read_text()
    assert begin in text and end in text
    return text[text.index(begin) + len(begin):text.index(end)]


@pytest.mark.parametrize("study", ["league", "league-models", "history-probes", "transfer", "transfer-beyond-rl",
                                   "transfer-models"])
def test_a_study_report_in_results_is_recomputed_from_the_committed_data(study, tmp_path):
    committed = committed_block(f"<!-- begin: benchmarks/report.py --study {study} -->",
                                f"<!-- end: {study} report -->")
    assert table_lines(committed) == table_lines(write_report(study, tmp_path, DATA)) != []


def test_the_deployable_table_in_results_is_recomputed_from_the_committed_records():
    committed = committed_block("<!-- begin: benchmarks/deployable.py --report benchmarks/data/deployable.jsonl -->",
                                "<!-- end: deployable report -->")
    records = [json.loads(line) for line in (DATA / "deployable.jsonl").read_text().splitlines()]
    assert table_lines(committed) == table_lines(markdown(records)) != []


def test_the_streams_comparison_in_results_is_recomputed_from_the_committed_data():
    committed = committed_block("<!-- begin: benchmarks/compare.py streams league -->", "<!-- end: compare report -->")
    assert table_lines(committed) == table_lines(compare("streams", "league", DATA)) != []
