"""A study's tables and plots, computed from its committed data alone (benchmarks/data/).

One table per target scenario (model and ratio): a row per searcher, method and source,
each over the seeds in the data, measured by version 2 of the rule (benchmarks/README.md;
the numbers by `quality.py`):
* b(T), the mean best-so-far at T = 10, 30, 100, 300, with a 90% bootstrap interval;
* T_q, the trials to reach the baseline's quality Q* - 0.5 pp, its speed-up over the
  AMC-style baseline with an interval, and the test-split guard at T_q;
* T_c, the trial from which the agent's smoothed curve stays near the baseline's A*;
* the gap of b(300) to the scenario's ceiling (a long black-box search: the study's ceiling study, or
  `--ceiling`);
* for a transfer, its lowest mean b(T) less the baseline's over T >= 30: never worse, or not;
* for a transfer of another searcher than the baseline's, the same searcher from scratch as its
  reference too: the trials to reach that search's own quality, and b(T) against it.
Each scenario says its headroom (Q* minus random-around-p's b(30)) and whether it is
informative. A table holds one device kind: the report refuses to mix them
(`--device-kind` picks one). Writes <out>/results.md, <out>/results.csv and one
<out>/<scenario>.png per table: best-so-far beside the learning curve.

    .venv/bin/python benchmarks/report.py --study league --out benchmarks/figures/league
    .venv/bin/python benchmarks/report.py --study league --into benchmarks/RESULTS.md   # the tables in place
"""

from __future__ import annotations

import argparse
import csv
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from prune_gym.agents.searchers import DEFAULT_SEARCHER
from prune_gym.benchmarks import quality
from prune_gym.benchmarks.convergence import TOLERANCE, draw_learning_curves, first_reach, smoothed_mean
from prune_gym.benchmarks.data_export import DATA, TRIAL_COLUMNS, read_csv_gz
from prune_gym.benchmarks.results_file import add_into_argument, print_or_write, report_markers
from prune_gym.benchmarks.study import STUDIES, Job
from prune_gym.errors import PruneGymError

BASELINE = ("-", "baseline", DEFAULT_SEARCHER, "-")  # (source, method, agent, its settings) of the reference row
RANDOM_AROUND_P = ("-", "baseline", "random", "-")
MIN_SEEDS = 5  # a cell with fewer is marked provisional
HEAD_TO_HEAD_BUDGETS = (30, 100, 300)
PLOT_RANGE = 0.06  # the best-so-far plot shows Q* - 6 pp and up, where methods differ
COLUMNS = ("scenario", "device_kind", "source", "method", "agent", "agent_settings", "seeds", "trials",
           *(f"b{t}{part}" for t in quality.BUDGETS for part in ("", "_low", "_high")),
           "t_q", "speed_up", "speed_up_low", "speed_up_high", "test_at_t_q", "guard", "t_c", "first_crossing",
           "gap_to_ceiling", "seconds_per_trial", "worst_shortfall", "worst_shortfall_at")


@dataclass
class RunData:
    """One run of the committed data: its per-trial reward-split accuracy, and the test-split accuracy
    of the trials that set a new best-so-far."""

    job: str
    model: str
    ratio: float
    source: str
    method: str
    agent: str
    agent_settings: str
    seed: int
    device_kind: str
    accuracies: np.ndarray
    seconds: list[float] = field(default_factory=list)  # per trial
    origins: list[str] = field(default_factory=list)
    tests: dict[int, float] = field(default_factory=dict)

    @property
    def row_key(self) -> tuple[str, str, str, str]:
        return self.source, self.method, self.agent, self.agent_settings

    @property
    def label(self) -> str:
        """The method's name in the study: a variant's own (e.g. `history-eq2-records`), else the method."""
        return Job.method_in_key(self.job, self.model, self.ratio, self.agent) or self.method

    def test_of_best_so_far(self, budget: int) -> float:
        """The test accuracy of the policy that holds this run's best-so-far at `budget`."""
        trial = quality.best_so_far_trial(self.accuracies, budget)
        if trial not in self.tests:
            raise PruneGymError(f"the data of {self.job} has no test accuracy for trial {trial}, a new best-so-far; "
                                f"export the study again")
        return self.tests[trial]


def load_runs(path: Path) -> list[RunData]:
    """The runs of a `<study>-trials.csv.gz` file, in file order."""
    rows = read_csv_gz(path)
    missing = [c for c in TRIAL_COLUMNS if rows and c not in rows[0]]
    if missing:
        raise PruneGymError(f"{path} lacks the columns {', '.join(missing)}: it was not written by data_export.py")
    runs: dict[str, RunData] = {}
    for row in rows:
        run = runs.get(row["job"])
        if run is None:
            run = runs[row["job"]] = RunData(row["job"], row["model"], float(row["ratio"]), row["source"],
                                             row["method"], row["agent"], row["agent_settings"], int(row["seed"]),
                                             row["device_kind"],
                                             np.empty(0))
            run.accuracies = []  # filled below, made an array at the end
        run.accuracies.append(float(row["accuracy"]))
        run.origins.append(row["origin"])
        run.seconds.append(float(row["seconds"]))
        if row["test_accuracy"]:
            run.tests[int(row["trial"])] = float(row["test_accuracy"])
    for run in runs.values():
        run.accuracies = np.asarray(run.accuracies)
    return list(runs.values())


@dataclass
class Ceiling:
    """The best policy of a scenario's long black-box search, its seeds pooled."""

    accuracy: float
    test_accuracy: float
    trials: int
    device_kind: str


def ceilings(runs: Iterable[RunData]) -> dict[tuple[str, float], Ceiling]:
    """Per (model, ratio), the best trial of all the runs there."""
    pooled: dict[tuple[str, float], list[RunData]] = {}
    for run in runs:
        pooled.setdefault((run.model, run.ratio), []).append(run)
    result = {}
    for scenario, found in pooled.items():
        best = max(found, key=lambda r: r.accuracies.max())
        trial = int(np.argmax(best.accuracies))
        result[scenario] = Ceiling(float(best.accuracies[trial]), best.test_of_best_so_far(len(best.accuracies)),
                                   sum(len(r.accuracies) for r in found), _one_device_kind(found, scenario))
    return result


@dataclass
class Row:
    """One searcher, method and source in a scenario, over its seeds."""

    source: str
    method: str
    agent: str
    agent_settings: str
    seeds: int
    trials: int
    best_so_far: dict[int, tuple[float, tuple[float, float]]]  # T -> (mean, interval), for T within the trials
    final_best: float  # the mean b(T) at the last trial all seeds have
    t_q: int | None
    speed_up: float | None
    speed_up_interval: tuple[float, float] | None
    test_at_t_q: float | None
    guard: bool | None
    t_c: int | None
    first_crossing: int | None  # version 1's rule, for the footnote
    gap_to_ceiling: float | None
    seconds_per_trial: float  # median over the seeds' trials (a paused search stretches one trial, not this)
    # A transfer's lowest mean b(T) less the baseline's over T >= 30, and that T (`quality.worst_shortfall`)
    shortfall: tuple[float, int] | None = None
    label: str = ""  # the method's name in the study (`RunData.label`); a transfer's row is named by it

    @property
    def row_key(self) -> tuple[str, str, str, str]:
        return self.source, self.method, self.agent, self.agent_settings

    @property
    def searcher_and_method(self) -> str:
        """The searcher and its settings from scratch; the searcher and the method's name in the study for a
        transfer, whose settings `_markdown` lists under the table."""
        if self.method == "baseline":
            return self.agent + ("" if self.agent_settings == "-" else f" ({self.agent_settings})")
        return f"{self.agent} {self.label or self.method}"

    @property
    def name(self) -> str:
        """`searcher_and_method`, and the source for a transfer."""
        return self.searcher_and_method + ("" if self.source == "-" else f" from {self.source}")


@dataclass
class Race:
    """Two rows racing to a quality (less 0.5 pp): the trials each takes and the speed-up with its interval;
    for a race to Q*, whether the test-split guard holds at the transfer's T_q (the study table's)."""

    quality: float
    t_q: int | None
    scratch_t_q: int | None
    speed_up: float | None
    interval: tuple[float, float] | None
    guard: bool | None = None


@dataclass
class AgainstScratch:
    """A transfer against its own searcher from scratch: the race to the quality that search holds at its
    last trial, the race to the AMC-style baseline's Q* (version 2's quality; none without the baseline's
    runs), and {T: (b difference, interval)}."""

    own: Race
    q_star: Race | None
    differences: dict[int, tuple[float, tuple[float, float]]]


@dataclass
class Scenario:
    """A table: the rows of one target model and ratio, on one device kind."""

    model: str
    ratio: float
    device_kind: str
    rows: list[Row]
    curves: dict[str, list[np.ndarray]]  # row name -> the seeds' per-trial accuracies
    target_quality: float | None  # Q*
    converged: float | None  # A*
    headroom: float | None
    ceiling: Ceiling | None
    # The AMC-style baseline against each other searcher from scratch: its name -> {T: (b difference, interval)}
    head_to_head: dict[str, dict[int, tuple[float, tuple[float, float]]]] = field(default_factory=dict)
    # A transfer of another searcher against that searcher from scratch: its name -> `AgainstScratch`
    against_scratch: dict[str, AgainstScratch] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.model} {self.ratio}"

    @property
    def informative(self) -> bool | None:
        return None if self.headroom is None else quality.informative(self.headroom)


def scenarios(runs: list[RunData], ceiling: dict[tuple[str, float], Ceiling] | None = None,
              device_kind: str | None = None) -> list[Scenario]:
    """The tables of `runs` (those on `device_kind` when given), in the order the data first names them."""
    ceiling = ceiling or {}
    if device_kind is not None:
        runs = [r for r in runs if r.device_kind == device_kind]
    targets = list(dict.fromkeys((r.model, r.ratio) for r in runs))
    return [_scenario(model, ratio, [r for r in runs if (r.model, r.ratio) == (model, ratio)],
                      ceiling.get((model, ratio))) for model, ratio in targets]


def _scenario(model: str, ratio: float, runs: list[RunData], ceiling: Ceiling | None) -> Scenario:
    kind = _one_device_kind(runs, (model, ratio))
    if ceiling is not None and ceiling.device_kind != kind:
        raise PruneGymError(f"{model} {ratio}: the runs were made on {kind}, the ceiling's on "
                            f"{ceiling.device_kind}; a table holds one device kind")
    groups: dict[tuple[str, str, str, str], list[RunData]] = {}
    for run in runs:
        groups.setdefault(run.row_key, []).append(run)
    baseline = groups.get(BASELINE)
    base_curves = [r.accuracies for r in baseline] if baseline else None
    target = quality.quality(base_curves) if base_curves else None
    converged = quality.converged_accuracy(base_curves) if base_curves else None
    base_test = [r.test_of_best_so_far(len(r.accuracies)) for r in baseline] if baseline else None
    rows, curves = [], {}
    named: dict[str, str] = {}  # a transfer's row name -> its settings, one per name
    for (source, method, agent, agent_settings), found in groups.items():
        seeds = [r.accuracies for r in found]
        n = quality.common_length(seeds)
        b = {t: quality.best_so_far_at(seeds, t) for t in quality.BUDGETS if t <= n}
        final = float(quality.mean_best_so_far(seeds)[-1])
        t_q = quality.time_to_quality(seeds, target) if target is not None else None
        if (source, method, agent, agent_settings) == BASELINE:
            speed, interval = 1.0, None  # the reference
        else:
            speed, interval = quality.speed_up(base_curves, seeds) if base_curves else (None, None)
        test = float(np.mean([r.test_of_best_so_far(t_q) for r in found])) if t_q is not None else None
        transfer = source != "-" and base_curves is not None and \
            min(n, quality.common_length(base_curves)) >= quality.NEVER_WORSE_FROM
        row = Row(source, method, agent, agent_settings, len(found), n, b, final, t_q, speed, interval, test,
                  quality.guard_holds([test], base_test) if test is not None else None,
                  quality.converged_at(seeds, converged) if converged is not None else None,
                  first_reach(smoothed_mean(seeds), converged) if converged is not None else None,
                  ceiling.accuracy - final if ceiling else None,
                  float(np.median([s for r in found for s in r.seconds])),
                  quality.worst_shortfall(base_curves, seeds) if transfer else None, found[0].label)
        if method != "baseline" and named.setdefault(row.name, agent_settings) != agent_settings:
            raise PruneGymError(f"{model} {ratio}: {row.name} ran with two settings ({agent_settings}; "
                                f"{named[row.name]}); give each its own variant name in the study")
        rows.append(row)
        curves[row.name] = seeds
    head_to_head = {}
    if base_curves:
        for row in rows:
            if row.row_key != BASELINE:
                n = min(quality.common_length(base_curves), row.trials)
                head_to_head[row.name] = {t: quality.difference_at(base_curves, curves[row.name], t)
                                          for t in HEAD_TO_HEAD_BUDGETS if t <= n}
    return Scenario(model, ratio, kind, rows, curves, target, converged, _headroom(groups, target), ceiling,
                    head_to_head, _against_scratch(rows, curves, groups, base_curves))


def _race(scratch: list[np.ndarray], mine: list[np.ndarray], reference: list[np.ndarray] | None = None,
          guard: bool | None = None) -> Race:
    """`mine` against `scratch` to the quality of `reference`, by default scratch's own."""
    target = quality.quality(scratch if reference is None else reference)
    return Race(target, quality.time_to_quality(mine, target), quality.time_to_quality(scratch, target),
                *quality.speed_up(scratch, mine, reference=reference), guard)


def _against_scratch(rows: list[Row], curves: dict[str, list[np.ndarray]],
                     groups: dict[tuple[str, str, str, str], list[RunData]],
                     base_curves: list[np.ndarray] | None) -> dict[str, AgainstScratch]:
    """Each transfer of a searcher other than the baseline's against that searcher's runs from scratch."""
    found = {}
    for row in rows:
        scratch = groups.get(("-", "baseline", row.agent, "-"))
        if row.source == "-" or row.agent == DEFAULT_SEARCHER or not scratch:
            continue
        own, mine = [r.accuracies for r in scratch], curves[row.name]
        n = min(quality.common_length(own), row.trials)
        found[row.name] = AgainstScratch(_race(own, mine),
                                         _race(own, mine, base_curves, row.guard) if base_curves else None,
                                         {t: quality.difference_at(mine, own, t)
                                          for t in HEAD_TO_HEAD_BUDGETS if t <= n})
    return found


def _headroom(groups: dict[tuple[str, str, str, str], list[RunData]], target: float | None) -> float | None:
    """Q* minus random-around-p's b(30): the random searcher's runs, else the baseline's own warm-up
    trials (the same draw) when it has at least 30."""
    if target is None:
        return None
    random = groups.get(RANDOM_AROUND_P)
    if random is None:
        warmup = ["warmup"] * quality.HEADROOM_TRIALS
        random = [r for r in groups[BASELINE] if r.origins[:quality.HEADROOM_TRIALS] == warmup]
    curves = [r.accuracies for r in random]
    if not curves or quality.common_length(curves) < quality.HEADROOM_TRIALS:
        return None
    return quality.headroom(target, curves)


def _one_device_kind(runs: list[RunData], scenario: tuple[str, float]) -> str:
    kinds = sorted({r.device_kind for r in runs})
    if len(kinds) > 1:
        raise PruneGymError(f"{scenario[0]} {scenario[1]} mixes runs made on {' and '.join(kinds)}; a table "
                            f"holds one device kind: pass --device-kind")
    return kinds[0]


def study_scenarios(study: str, data: Path = DATA, ceiling_studies: Sequence[str] | None = None,
                    device_kind: str | None = None) -> list[Scenario]:
    """The tables of `study`'s committed data, with its reference study's baselines of its targets, each
    scenario's ceiling taken from the runs of `ceiling_studies` (None: the study's own ceiling study, once its
    data are committed)."""
    if ceiling_studies is None:
        ceiling_studies = default_ceiling(study, data)
    runs = load_runs(data_file(data, study, "export the study first (benchmarks/data_export.py)"))
    reference = STUDIES[study].reference if study in STUDIES else None
    if reference:  # its targets only (not its sources' runs), with the reference's baselines of its searchers there
        own = {r.job for r in runs}
        targets = {(r.model, r.ratio) for r in runs if r.method != "baseline"}
        runs = [r for r in runs if (r.model, r.ratio) in targets]
        runs += [r for r in load_runs(data_file(data, reference, f"run and export the {reference} study first"))
                 if (r.model, r.ratio) in targets and r.job not in own and r.method == "baseline"
                 and r.agent_settings == "-" and r.agent in {DEFAULT_SEARCHER, "random", *STUDIES[study].agents}]
    ceiling_runs = [run for name in ceiling_studies
                    for run in load_runs(data_file(data, name, "run and export the ceiling study first"))]
    ceiling = ceilings(r for r in ceiling_runs if device_kind is None or r.device_kind == device_kind)
    return scenarios(runs, ceiling, device_kind)


def write_report(study: str, out: str | Path, data: Path = DATA, ceiling_studies: Sequence[str] | None = None,
                 device_kind: str | None = None) -> str:
    """Write results.md, results.csv and a plot per scenario of `study_scenarios`; return the Markdown."""
    out = Path(out)
    tables = study_scenarios(study, data, ceiling_studies, device_kind)
    out.mkdir(parents=True, exist_ok=True)
    plots = {}
    for scenario in tables:
        plots[scenario.name] = out / f"{_slug(scenario.name)}.png"
        plot_scenario(scenario, plots[scenario.name])
    _write_csv(tables, out / "results.csv")
    markdown = "\n".join(_markdown(scenario, plots[scenario.name].name) for scenario in tables)
    (out / "results.md").write_text(markdown)
    return markdown


def default_ceiling(study: str, data: Path) -> list[str]:
    """The study that gives `study`'s scenarios their ceiling, if its data are committed in `data`."""
    name = STUDIES[study].ceiling if study in STUDIES else None
    return [name] if name and (data / f"{name}-trials.csv.gz").exists() else []


def data_file(data: Path, study: str, advice: str) -> Path:
    """`study`'s trials file in `data`; refused with `advice` if there is none."""
    path = data / f"{study}-trials.csv.gz"
    if not path.exists():
        raise PruneGymError(f"{path} does not exist: {advice}")
    return path


def speed_up_text(speed_up: float | None, interval: tuple[float, float] | None, never: str = "never") -> str:
    """A speed-up as the tables print it, "2.50x [1.20, 3.40]"; `never` for a search that never reached the
    quality, with the interval still (its lower end usually 0)."""
    text = never if speed_up is None else f"{speed_up:.2f}x"
    return text if interval is None else text + " [{:.2f}, {:.2f}]".format(*interval)


def _race_cells(race: Race | None) -> list[str]:
    """A race's two cells: the trials of each row, and the speed-up (saying where the guard does not hold)."""
    if race is None:
        return ["-", "-"]
    if race.scratch_t_q is None:
        return [f"{race.t_q or 'never'} / never", "- (never from scratch)"]
    speed = speed_up_text(race.speed_up, race.interval) + (", guard NOT held" if race.guard is False else "")
    return [f"{race.t_q or 'never'} / {race.scratch_t_q}", speed]


def _difference_cell(difference: tuple[float, tuple[float, float]] | None, seeds: int) -> str:
    """A difference of mean b(T) with its interval and verdict; '-' beyond the budget, no interval on one seed."""
    if difference is None:
        return "-"
    mean, (low, high) = difference
    if seeds < 2:
        return f"{100 * mean:+.2f} pp (one seed: no interval)"
    return f"{quality.verdict(difference)}: {100 * mean:+.2f} pp [{100 * low:+.2f}, {100 * high:+.2f}]"


def _markdown(scenario: Scenario, plot: str) -> str:
    percent = lambda x: "-" if x is None else f"{100 * x:.2f}"  # noqa: E731
    facts = [f"on {scenario.device_kind}"]
    if scenario.target_quality is not None:
        facts.append(f"Q* = {percent(scenario.target_quality)}%")
    if scenario.headroom is not None:
        facts.append(f"headroom {100 * scenario.headroom:.2f} pp: "
                     f"{'informative' if scenario.informative else 'not informative'}")
    else:
        facts.append("headroom unknown (no random policies around p)")
    few = [row.name for row in scenario.rows if row.seeds < MIN_SEEDS]
    if few:
        facts.append(f"provisional, under {MIN_SEEDS} seeds: {', '.join(few)}")
    if scenario.ceiling is not None:
        facts.append(f"ceiling {percent(scenario.ceiling.accuracy)}% (test {percent(scenario.ceiling.test_accuracy)}"
                     f"%, best of {scenario.ceiling.trials} trials)")
    lines = [f"### {scenario.name}", "", "; ".join(facts) + ".", "",
             "| searcher | seeds | " + " | ".join(f"b({t})" for t in quality.BUDGETS) +
             " | T_q | speed-up [90%] | test at T_q | T_c | gap to ceiling | s/trial |",
             "|---" * (len(quality.BUDGETS) + 8) + "|"]
    for row in scenario.rows:
        cells = [row.name, str(row.seeds)]
        for t in quality.BUDGETS:
            if t in row.best_so_far:
                mean, (low, high) = row.best_so_far[t]
                cells.append(f"{percent(mean)} [{percent(low)}, {percent(high)}]")
            else:
                cells.append("-")
        cells.append("never" if row.t_q is None else str(row.t_q))
        if row.row_key == BASELINE:
            cells.append("1 (reference)")
        elif row.speed_up is not None:
            cells.append(speed_up_text(row.speed_up, row.speed_up_interval))
        elif scenario.target_quality is not None:
            short = scenario.target_quality - TOLERANCE - row.final_best
            cells.append(speed_up_text(None, row.speed_up_interval, never=f"never ({100 * short:.2f} pp short)"))
        else:
            cells.append("-")
        cells.append("-" if row.guard is None else f"{percent(row.test_at_t_q)}% {'ok' if row.guard else 'NOT held'}")
        cells.append("never" if row.t_c is None else str(row.t_c))
        cells.append("-" if row.gap_to_ceiling is None else f"{100 * row.gap_to_ceiling:.2f} pp")
        cells.append(f"{row.seconds_per_trial:.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    named: dict[str, dict[str, list[str]]] = {}  # searcher and method name -> settings -> the sources
    for row in scenario.rows:
        if row.method != "baseline" and row.agent_settings != "-":
            named.setdefault(row.searcher_and_method, {}).setdefault(row.agent_settings, []).append(row.source)
    if named:
        lines += ["", "The transfers' settings:", ""]
        for name, settings in named.items():
            lines.append(f"- {name}: `{next(iter(settings))}`" if len(settings) == 1 else f"- {name}: " + "; ".join(
                f"`{text}` (from {', '.join(sources)})" for text, sources in settings.items()))
    if scenario.head_to_head:
        lines += ["", f"The AMC-style baseline ({DEFAULT_SEARCHER}) against each other row: the difference of "
                      f"their mean b(T), 90% interval, and whether it clears zero.", "",
                  "| against | " + " | ".join(f"T = {t}" for t in HEAD_TO_HEAD_BUDGETS) + " |",
                  "|---" * (len(HEAD_TO_HEAD_BUDGETS) + 1) + "|"]
        seeds = {row.name: row.seeds for row in scenario.rows}
        baseline_seeds = next(row.seeds for row in scenario.rows if row.row_key == BASELINE)
        for other, differences in scenario.head_to_head.items():
            cells = [_difference_cell(differences.get(t), min(seeds[other], baseline_seeds))
                     for t in HEAD_TO_HEAD_BUDGETS]
            lines.append(f"| {other} | " + " | ".join(cells) + " |")
    if scenario.against_scratch:
        lines += ["", "Each searcher with history against itself from scratch: the trials to reach, less 0.5 pp, the "
                      "quality its searches from scratch hold at their last trial, and the baseline's Q* (with the "
                      "test-split guard at that T_q, as in the table above), with the speed-ups; and the difference "
                      "of mean b(T) (history less scratch), 90% intervals.", "",
                  "| with history | its quality from scratch | T_q: with history / from scratch | speed-up [90%] | "
                  "to Q*: with history / from scratch | speed-up to Q* [90%] | " +
                  " | ".join(f"T = {t}" for t in HEAD_TO_HEAD_BUDGETS) + " |",
                  "|---" * (len(HEAD_TO_HEAD_BUDGETS) + 6) + "|"]
        seeds = {row.name: row.seeds for row in scenario.rows}
        scratch_seeds = {row.agent: row.seeds for row in scenario.rows if row.method == "baseline"}
        for row in [row for row in scenario.rows if row.name in scenario.against_scratch]:
            found = scenario.against_scratch[row.name]
            n = min(seeds[row.name], scratch_seeds[row.agent])
            cells = [f"{100 * found.own.quality:.2f}%", *_race_cells(found.own), *_race_cells(found.q_star),
                     *(_difference_cell(found.differences.get(t), n) for t in HEAD_TO_HEAD_BUDGETS)]
            lines.append(f"| {row.name} | " + " | ".join(cells) + " |")
    shortfalls = [row for row in scenario.rows if row.shortfall is not None]
    if shortfalls:
        lines += ["", f"Never worse than the baseline: each transfer's lowest mean b(T) less the baseline's over T >= "
                      f"{quality.NEVER_WORSE_FROM}, and whether it stays within {100 * TOLERANCE:.1f} pp: " +
                  "; ".join(f"{row.name} {100 * row.shortfall[0]:+.2f} pp at T = {row.shortfall[1]} "
                            f"({'holds' if quality.never_worse(row.shortfall[0]) else 'does not hold'})"
                            for row in shortfalls) + "."]
    crossings = ", ".join(f"{row.name} {row.first_crossing or 'never'}" for row in scenario.rows)
    lines += ["", f"Version 1's first crossing of A* - 0.5 pp (footnote only): {crossings}.", "",
              f"![{scenario.name}]({plot})", ""]
    return "\n".join(lines)


def plot_scenario(scenario: Scenario, out: Path) -> None:
    """Best-so-far (mean over seeds, their range shaded) beside the learning curve, a pair of panels per source
    of the transfers (the searches from scratch in each), one colour per method across them and one legend
    under all; the best-so-far axis from `PLOT_RANGE` under Q*."""
    palette = colormaps["tab20"].colors[::2] + colormaps["tab20"].colors[1::2]  # ten strong colours, then light ones
    colours: dict[str, Any] = {}
    for row in sorted(scenario.rows, key=lambda row: row.source != "-"):  # the searches from scratch first
        colours.setdefault(row.searcher_and_method, palette[len(colours) % len(palette)])
    sources = list(dict.fromkeys(row.source for row in scenario.rows if row.source != "-")) or ["-"]
    figure = Figure(figsize=(13.0, 4.5 * len(sources) + 0.5 + 0.22 * (len(colours) + 3)), dpi=100,
                    layout="constrained")
    FigureCanvasAgg(figure)
    for (best, learning), source in zip(figure.subplots(len(sources), 2, squeeze=False), sources):
        curves = {row.searcher_and_method: scenario.curves[row.name]
                  for row in scenario.rows if row.source in ("-", source)}
        for axes in (best, learning):
            axes.set_prop_cycle(color=[colours[name] for name in curves])
        for name, seeds in curves.items():
            b = quality.best_so_far(seeds)
            trials = np.arange(1, b.shape[1] + 1)
            line, = best.plot(trials, b.mean(0), label=f"{name} ({len(seeds)} seeds)")
            best.fill_between(trials, b.min(0), b.max(0), color=line.get_color(), alpha=0.15)
        if scenario.ceiling is not None:  # drawn before the limits are set, so that they take it in
            best.axhline(scenario.ceiling.accuracy, color="black", linestyle=":", linewidth=1,
                         label=f"ceiling ({scenario.ceiling.trials} trials)")
        if scenario.target_quality is not None:
            best.axhline(scenario.target_quality - TOLERANCE, color="grey", linestyle="--", linewidth=1,
                         label="Q* - 0.5 pp")
            best.set_ylim(bottom=scenario.target_quality - PLOT_RANGE)
        title = scenario.name if source == "-" else f"{scenario.name}, history from {source}"
        best.set(xscale="log", xlabel="trials (T)", ylabel="best reward-split accuracy so far, b(T)",
                 title=f"{title}: best so far")
        best.grid(alpha=0.3)
        draw_learning_curves(learning, curves, scenario.converged)
        learning.set_title(f"{title}: learning curve")
    entries: dict[str, Any] = {}  # label -> line: each method once, with the reference lines
    for axes in figure.axes:
        for line, label in zip(*axes.get_legend_handles_labels()):
            entries.setdefault(label, line)
    figure.legend(list(entries.values()), list(entries), loc="outside lower center", fontsize="small")
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out)


def _write_csv(tables: list[Scenario], path: Path) -> None:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        for scenario in tables:
            for row in scenario.rows:
                b = [x for t in quality.BUDGETS for x in ((row.best_so_far[t][0], *row.best_so_far[t][1])
                                                          if t in row.best_so_far else ("", "", ""))]
                interval = row.speed_up_interval or ("", "")
                writer.writerow([scenario.name, scenario.device_kind, row.source, row.method, row.agent,
                                 row.agent_settings, row.seeds,
                                 row.trials, *b, row.t_q or "", row.speed_up or "", *interval,
                                 "" if row.test_at_t_q is None else row.test_at_t_q,
                                 "" if row.guard is None else row.guard, row.t_c or "", row.first_crossing or "",
                                 "" if row.gap_to_ceiling is None else row.gap_to_ceiling, row.seconds_per_trial,
                                 *(row.shortfall or ("", ""))])


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9.]+", "-", text.lower()).strip("-")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--study", required=True, help="the study whose data to report (<study>-trials.csv.gz)")
    parser.add_argument("--data", type=Path, default=DATA, help="where the compressed tables are")
    parser.add_argument("--ceiling", nargs="*", metavar="STUDY",
                        help="the studies whose long black-box runs give each scenario's ceiling (default: the "
                             "study's own ceiling study, once its data are committed; none: no ceiling)")
    parser.add_argument("--device-kind", help="report only the runs made on this device kind")
    parser.add_argument("--out", type=Path, help="where results.md, results.csv and the plots go "
                                                 "(default: benchmarks/figures/<study>)")
    add_into_argument(parser)
    args = parser.parse_args()
    if args.into and (args.ceiling is not None or args.device_kind):
        parser.error("--into writes the block of `report.py --study STUDY` alone; without --ceiling and "
                     "--device-kind, print the table instead")
    out = args.out or Path(__file__).parent / "figures" / args.study
    try:
        print_or_write(write_report(args.study, out, args.data, args.ceiling, args.device_kind), args.into,
                       report_markers(args.study), figures=out)
    except PruneGymError as exc:
        parser.exit(2, f"report: error: {exc}\n")


if __name__ == "__main__":
    main()
