"""How a search is measured (version 2 of the rule that benchmarks/README.md states), on per-trial curves.

Every function takes the seeds of one method as a list of per-trial arrays (reward-split
accuracy, trial 0 first) and works on the trials all of them have. Two questions:
* the user's: `best_so_far`, `time_to_quality` and `speed_up` (with a bootstrap interval
  over seeds), guarded on the test split by `guard_holds`;
* the paper's: `converged_at`, the first trial from which the agent's smoothed curve stays
  near the baseline's converged accuracy for `STAY` trials.
`headroom` says whether a scenario is informative; `worst_shortfall` whether a method that
starts from history is never worse than the baseline. Accuracies are fractions; a point
(pp) is 0.01.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from prune_gym.benchmarks import convergence
from prune_gym.benchmarks.convergence import TOLERANCE, first_reach, smoothed_mean

BUDGETS = (10, 30, 100, 300)  # the trial budgets T at which b(T) is reported
STAY = 30  # trials the smoothed curve must stay near A* for the agent to count as converged
NEVER_WORSE_FROM = 30  # history must never leave a search worse off than the baseline from this budget on
HEADROOM_TRIALS = 30  # random policies around p whose best sets the floor of an informative scenario
INFORMATIVE_HEADROOM = 0.01  # a scenario is informative when search can win at least a point over that floor
PAYS_SPEED_UP = 3.0  # a transfer pays when it reaches quality this many times sooner than the baseline,
PAYS_INTERVAL_ABOVE = 1.5  # ... the speed-up's interval above this, and the test-split guard held
CONFIDENCE = 0.9  # of every bootstrap interval
RESAMPLES = 2000

Curves = Sequence[np.ndarray]


def common_length(curves: Curves) -> int:
    """The trials every seed has."""
    return min(len(c) for c in curves)


def best_so_far(curves: Curves) -> np.ndarray:
    """b(T) of each seed, T = 1..n: the best accuracy among its first T trials (seeds x n)."""
    n = common_length(curves)
    return np.maximum.accumulate(np.array([np.asarray(c[:n], dtype=np.float64) for c in curves]), axis=1)


def mean_best_so_far(curves: Curves) -> np.ndarray:
    """The seeds' mean b(T), T = 1..n."""
    return best_so_far(curves).mean(axis=0)


def quality(baseline: Curves) -> float:
    """Q*: the baseline's mean best-so-far at the end of its budget."""
    return float(mean_best_so_far(baseline)[-1])


def time_to_quality(curves: Curves, target: float) -> int | None:
    """T_q: the first budget T (from 1) at which the mean b(T) reaches target - 0.5 pp; None if never."""
    return first_reach(mean_best_so_far(curves), target)


def resampled_means(rng: np.random.Generator, groups: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Each group's mean over a resample, with replacement, of its seeds (rows), `RESAMPLES` times: one array
    per group, a row per resample. The resamples are drawn as a loop would draw them, group after group in
    each resample; groups of one size are drawn in one call, which gives the same numbers from `rng`."""
    sizes = [len(g) for g in groups]
    if len(set(sizes)) == 1:
        n = sizes[0]
        drawn = rng.integers(0, n, (RESAMPLES, len(groups) * n))
        picks = [drawn[:, i * n:(i + 1) * n] for i in range(len(groups))]
    else:
        rows = [[rng.integers(0, n, n) for n in sizes] for _ in range(RESAMPLES)]
        picks = [np.array([row[i] for row in rows]) for i in range(len(groups))]
    return [g[p].mean(axis=1) for g, p in zip(groups, picks)]


def first_reaches(curves: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """`first_reach` of each row of `curves` to its own target, 0 where it never reaches it."""
    reached = curves >= (targets - TOLERANCE)[:, None]
    return np.where(reached.any(axis=1), reached.argmax(axis=1) + 1, 0)


def interval(samples: Sequence[float]) -> tuple[float, float]:
    """The central `CONFIDENCE` interval of bootstrap samples."""
    tail = 100 * (1 - CONFIDENCE) / 2
    low, high = np.percentile(np.asarray(samples, dtype=np.float64), [tail, 100 - tail])
    return float(low), float(high)


def best_so_far_at(curves: Curves, budget: int, seed: int = 0) -> tuple[float, tuple[float, float]]:
    """The mean b(budget) over seeds and its bootstrap interval (resampling the seeds)."""
    b = best_so_far(curves)[:, budget - 1]
    (samples,) = resampled_means(np.random.default_rng(seed), [b])
    return float(b.mean()), interval(samples)


def difference_at(curves: Curves, others: Curves, budget: int, seed: int = 0) -> tuple[float, tuple[float, float]]:
    """How far `curves`' mean b(budget) is above `others'`, and its bootstrap interval (resampling the seeds
    of both)."""
    mine, theirs = best_so_far(curves)[:, budget - 1], best_so_far(others)[:, budget - 1]
    mine_resampled, theirs_resampled = resampled_means(np.random.default_rng(seed), [mine, theirs])
    return float(mine.mean() - theirs.mean()), interval(mine_resampled - theirs_resampled)


def worst_shortfall(baseline: Curves, method: Curves, start: int = NEVER_WORSE_FROM) -> tuple[float, int]:
    """The lowest difference of mean b(T), `method` less `baseline`, over T from `start` to the trials both
    have, and the first T where it is that low: never worse within 0.5 pp when it is at least -0.005."""
    n = min(common_length(baseline), common_length(method))
    if n < start:
        raise ValueError(f"the curves have {n} trials, fewer than the first budget compared, {start}")
    gaps = mean_best_so_far(method)[start - 1:n] - mean_best_so_far(baseline)[start - 1:n]
    worst = int(np.argmin(gaps))
    return float(gaps[worst]), start + worst


def verdict(difference: tuple[float, tuple[float, float]]) -> str:
    """'beats', 'loses to' or 'ties with', by whether the interval of a difference clears zero."""
    _, (low, high) = difference
    return "beats" if low > 0 else "loses to" if high < 0 else "ties with"


def speed_up(baseline: Curves, method: Curves, seed: int = 0,
             reference: Curves | None = None) -> tuple[float | None, tuple[float, float] | None]:
    """T_q(baseline) / T_q(method) and its bootstrap interval, resampling the seeds of both rows (Q* too).

    The quality is the `reference` row's (resampled with them), by default the baseline's own; another
    reference races, say, TPE with history against TPE from scratch to the AMC-style baseline's Q*.
    (None, None) when the baseline never reaches the quality; None and an interval when the method never
    does. A resample in which the method never does counts as a speed-up of 0, so that the interval says how
    often that happens; one in which the baseline never does (only with another reference) is left out,
    which tends to lower the interval's upper end.
    """
    target = quality(baseline if reference is None else reference)
    mine, theirs = time_to_quality(method, target), time_to_quality(baseline, target)
    if theirs is None:
        return None, None
    point = None if mine is None else theirs / mine
    groups = [best_so_far(baseline), best_so_far(method)] + ([] if reference is None else [best_so_far(reference)])
    base, resampled, *marks = resampled_means(np.random.default_rng(seed), groups)
    targets = (marks[0] if marks else base)[:, -1]
    t_base, t_method = first_reaches(base, targets), first_reaches(resampled, targets)
    counted = t_base > 0  # a resample in which the baseline never reaches the quality is left out
    samples = np.where(t_method > 0, t_base / np.maximum(t_method, 1), 0.0)[counted]
    return point, (interval(samples) if len(samples) and (point is not None or samples.any()) else None)


def best_so_far_trial(curve: np.ndarray, budget: int) -> int:
    """The trial (from 0) that holds a seed's best-so-far at `budget`: the first to reach that best."""
    return int(np.argmax(np.asarray(curve[:budget])))


def guard_holds(test_at_quality: Sequence[float], baseline_best_test: Sequence[float]) -> bool:
    """The test-split guard: the seeds' mean test accuracy of the best-so-far policy at T_q is within
    0.5 pp of the baseline's best policies' mean test accuracy (or above it)."""
    return float(np.mean(test_at_quality)) >= float(np.mean(baseline_best_test)) - TOLERANCE


def never_worse(shortfall: float) -> bool:
    """Issue 19's "never worse": a transfer's lowest mean b(T) less the baseline's over T >= 30
    (`worst_shortfall`) is no more than 0.5 pp under zero."""
    return shortfall >= -TOLERANCE


def pays(speed: float | None, speed_interval: tuple[float, float] | None, guard: bool | None) -> bool:
    """Issue 19's "pays": a speed-up of at least 3x whose interval lies above 1.5x, the test-split guard held."""
    return (speed is not None and speed >= PAYS_SPEED_UP and speed_interval is not None
            and speed_interval[0] > PAYS_INTERVAL_ABOVE and bool(guard))


def converged_accuracy(baseline: Curves) -> float:
    """A*: the baseline's EMA-smoothed mean curve, averaged over its last 20% of trials."""
    return convergence.converged_accuracy(smoothed_mean(list(baseline)))


def converged_at(curves: Curves, target: float) -> int | None:
    """T_c: the first trial (from 1) from which the seeds' smoothed mean curve stays at or above
    target - 0.5 pp for `STAY` consecutive trials; None if it never does within the budget."""
    above = smoothed_mean(list(curves)) >= target - TOLERANCE
    run = 0
    for trial, ok in enumerate(above):
        run = run + 1 if ok else 0
        if run == STAY:
            return trial - STAY + 2
    return None


def headroom(target: float, random_around_p: Curves) -> float:
    """Q* minus the mean best-so-far of `HEADROOM_TRIALS` random policies around p."""
    return target - float(mean_best_so_far(random_around_p)[HEADROOM_TRIALS - 1])


def informative(headroom_points: float) -> bool:
    """Whether search has something to win in a scenario of this headroom."""
    return headroom_points >= INFORMATIVE_HEADROOM
