"""RESULTS.md's generated tables are what the benchmark scripts compute from the committed data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from prune_gym.benchmarks.compare import compare
from prune_gym.benchmarks.data_export import DATA
from prune_gym.benchmarks.deployable import markdown
from prune_gym.benchmarks.report import write_report
from prune_gym.benchmarks.matrix import transfer_matrix
from prune_gym.benchmarks.results_file import (compare_markers, deployable_markers, matrix_markers, read_block,
                                               report_markers, write_block)
from prune_gym.errors import PruneGymError

RESULTS = Path(__file__).parents[1] / "benchmarks" / "RESULTS.md"


def table_lines(markdown: str) -> list[str]:
    """The lines that carry figures: headings, scenario facts and table rows (not plots)."""
    return [line for line in markdown.splitlines() if line.startswith(("|", "###", "on "))]


@pytest.mark.parametrize("study", ["league", "league-models", "history-probes", "transfer", "transfer-beyond-rl",
                                   "transfer-models"])
def test_a_study_report_in_results_is_recomputed_from_the_committed_data(study, tmp_path):
    committed = read_block(RESULTS, report_markers(study))
    assert table_lines(committed) == table_lines(write_report(study, tmp_path, DATA)) != []


def test_the_deployable_table_in_results_is_recomputed_from_the_committed_records():
    committed = read_block(RESULTS, deployable_markers())
    records = [json.loads(line) for line in (DATA / "deployable.jsonl").read_text().splitlines()]
    assert table_lines(committed) == table_lines(markdown(records)) != []


def test_the_streams_comparison_in_results_is_recomputed_from_the_committed_data():
    committed = read_block(RESULTS, compare_markers("streams", "league"))
    assert table_lines(committed) == table_lines(compare("streams", "league", DATA)) != []


def test_the_transfer_matrix_in_results_is_recomputed_from_the_committed_data():
    committed = read_block(RESULTS, matrix_markers())
    assert table_lines(committed) == table_lines(transfer_matrix()) != []
    assert committed.strip().splitlines()[-1] == transfer_matrix().splitlines()[-1]  # the tally under the table


def test_a_block_is_rewritten_between_its_markers_alone_with_its_plots_relinked(tmp_path):
    results, figures = tmp_path / "RESULTS.md", tmp_path / "figures" / "league"
    markers = report_markers("league")
    results.write_text(f"# prose\n\n{markers[0]}\nstale table\n{markers[1]}\n\nmore prose\n")
    write_block(results, markers, "### resnet20 0.3\n\n| a |\n\n![resnet20 0.3](resnet20-0.3.png)\n", figures)
    assert results.read_text() == (f"# prose\n\n{markers[0]}\n### resnet20 0.3\n\n| a |\n\n"
                                   f"![resnet20 0.3](figures/league/resnet20-0.3.png)\n{markers[1]}\n\nmore prose\n")
    assert read_block(results, markers).splitlines()[1] == "### resnet20 0.3"


def test_a_file_without_the_markers_is_refused_and_left_alone(tmp_path):
    results = tmp_path / "RESULTS.md"
    results.write_text("# prose only\n")
    with pytest.raises(PruneGymError, match="no block between"):
        write_block(results, report_markers("league"), "| a |")
    assert results.read_text() == "# prose only\n"
