"""RESULTS.md's generated tables are what the benchmark scripts compute from the committed data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from prune_gym.benchmarks.compare import compare
from prune_gym.benchmarks.data_export import DATA
from prune_gym.benchmarks.deployable import markdown
from prune_gym.benchmarks.deployable_league import RECORD, read_record, report as league_report
from prune_gym.benchmarks.library_study import report as library_report
from prune_gym.benchmarks.matrix import transfer_matrix
from prune_gym.benchmarks.report import write_report
from prune_gym.benchmarks.leaderboard import leaderboard
from prune_gym.benchmarks.probes.library_sources import report as library_sources_report
from prune_gym.benchmarks.reward_fidelity import read_rows, report as fidelity_report
from prune_gym.benchmarks.results_file import (compare_markers, deployable_league_markers, deployable_markers,
                                               fidelity_markers, leaderboard_markers, library_markers,
                                               library_sources_markers, matrix_markers, read_block, report_markers,
                                               surrogate_league_markers, write_block)
from prune_gym.benchmarks.surrogate_league import report as surrogate_league_report
from prune_gym.errors import PruneGymError

RESULTS = Path(__file__).parents[1] / "benchmarks" / "RESULTS.md"


def table_lines(markdown: str) -> list[str]:
    """The lines that carry figures: headings, scenario facts and table rows (not plots)."""
    return [line for line in markdown.splitlines() if line.startswith(("|", "###", "on "))]


@pytest.mark.parametrize("study", ["league", "league-models", "history-probes", "transfer", "transfer-beyond-rl",
                                   "transfer-beyond-rl-models", "transfer-models"])
def test_a_study_report_in_results_is_recomputed_from_the_committed_data(study, tmp_path):
    committed = read_block(RESULTS, report_markers(study))
    assert table_lines(committed) == table_lines(write_report(study, tmp_path, DATA)) != []


def test_the_deployable_table_in_results_is_recomputed_from_the_committed_records():
    committed = read_block(RESULTS, deployable_markers("benchmarks/data/deployable.jsonl"))
    records = [json.loads(line) for line in (DATA / "deployable.jsonl").read_text().splitlines()]
    assert table_lines(committed) == table_lines(markdown(records)) != []


def test_the_deployable_league_in_results_is_recomputed_from_the_committed_record():
    committed = read_block(RESULTS, deployable_league_markers())
    assert table_lines(committed) == table_lines(league_report(read_record(RECORD))) != []


def test_the_streams_comparison_in_results_is_recomputed_from_the_committed_data():
    committed = read_block(RESULTS, compare_markers("streams", "league"))
    assert table_lines(committed) == table_lines(compare("streams", "league", DATA)) != []


def test_the_default_searchs_table_in_results_is_recomputed_from_the_committed_data():
    committed = read_block(RESULTS, library_markers())
    assert table_lines(committed) == table_lines(library_report(DATA)) != []


def test_the_library_sources_probe_in_results_is_recomputed_from_the_committed_data():
    committed = read_block(RESULTS, library_sources_markers())
    assert table_lines(committed) == table_lines(library_sources_report(DATA)) != []


def test_the_reward_fidelity_table_in_results_is_recomputed_from_the_committed_rows():
    committed = read_block(RESULTS, fidelity_markers())
    assert table_lines(committed) == table_lines(fidelity_report(read_rows())) != []


def test_the_leaderboard_in_results_is_recomputed_from_the_committed_data():
    committed = read_block(RESULTS, leaderboard_markers())
    assert committed.strip("\n") == leaderboard() != ""


def test_the_league_on_the_surrogates_in_results_is_recomputed_from_the_committed_data():
    committed = read_block(RESULTS, surrogate_league_markers())
    assert table_lines(committed) == table_lines(surrogate_league_report(DATA)) != []


def test_the_transfer_matrix_in_results_is_recomputed_from_the_committed_data():
    committed, computed = read_block(RESULTS, matrix_markers()), transfer_matrix()
    assert committed.strip("\n") == computed != ""  # the table, the count under it and the cells not run yet


def test_a_block_is_rewritten_between_its_markers_alone_with_its_plots_relinked(tmp_path):
    results, figures = tmp_path / "RESULTS.md", tmp_path / "figures" / "league"
    markers = report_markers("league")
    results.write_text(f"# prose\n\n{markers[0]}\nstale table\n{markers[1]}\n\nmore prose\n")
    write_block(results, markers, "### resnet20 0.3\n\n| a |\n\n![resnet20 0.3](resnet20-0.3.png)\n", figures)
    assert results.read_text() == (f"# prose\n\n{markers[0]}\n### resnet20 0.3\n\n| a |\n\n"
                                   f"![resnet20 0.3](figures/league/resnet20-0.3.png)\n{markers[1]}\n\nmore prose\n")
    assert read_block(results, markers).splitlines()[1] == "### resnet20 0.3"
    once = results.read_text()
    write_block(results, markers, "### resnet20 0.3\n\n| a |\n\n![resnet20 0.3](resnet20-0.3.png)\n", figures)
    assert results.read_text() == once  # writing the same block again changes nothing


BEGIN, END = report_markers("league")
OTHER_BEGIN, OTHER_END = compare_markers("streams", "league")


@pytest.mark.parametrize("text, why", [
    ("# prose only\n", "no block between"),
    (f"{END}\nstale\n{BEGIN}\n", "no block between"),  # the end before the begin
    (f"{BEGIN}\nstale\n", "no block between"),
    (f"{BEGIN}\na\n{END}\n{BEGIN}\nb\n{END}\n", "2 times"),
    (f"{BEGIN}\nstale\n{OTHER_BEGIN}\nprose of another block\n{OTHER_END}\n{END}\n", "another block begins"),
])
def test_a_file_whose_markers_do_not_enclose_one_block_alone_is_refused_and_left_alone(tmp_path, text, why):
    results = tmp_path / "RESULTS.md"
    results.write_text(text)
    with pytest.raises(PruneGymError, match=why):
        write_block(results, (BEGIN, END), "| a |")
    assert results.read_text() == text


def test_plots_outside_the_results_folder_are_refused(tmp_path):
    (tmp_path / "docs").mkdir()
    results = tmp_path / "docs" / "RESULTS.md"
    results.write_text(f"{BEGIN}\n{END}\n")
    with pytest.raises(PruneGymError, match="outside"):
        write_block(results, (BEGIN, END), "![a](a.png)", tmp_path / "figures")
