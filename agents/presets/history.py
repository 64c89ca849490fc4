"""`history`: the project's default way of using a source run, the assistant with the fixes that paid.

On top of the paper's assistant method: the source's preloaded rewards re-based on the
target's scale and a floor under the exploration noise (for the searchers that have those
settings); the assistant playing around the search's 5 best trials once it has explored the
records, handing over when the actor plays as well, and keeping every other trial until
trial 300; its records the source's policies scaled as a whole to fill the budget, after a
power where the ratios lie far apart. benchmarks/RESULTS.md measures each fix alone (its
transfer section has one variant per step).
"""

from __future__ import annotations

import numpy as np

from prune_gym.agents.presets import Preset

POWER_FROM_LOG_RATIO = 2.0  # ln p / ln p_source from which the records are raised to a power first


def records_rescale(ratio: float, source_ratio: float | None) -> str:
    """How a source's policies at `source_ratio` become the assistant's records at `ratio`.

    Scaling a policy as a whole keeps its shape, which serves a near source; raising its fractions to
    ln p / ln p_source first spreads them as the target's policies spread. Measured into ResNet-20 at
    0.2 (5 seeds): power pays from 0.5 (log-ratio 2.32) and costs from 0.4 (1.76).
    """
    if source_ratio is not None and np.log(ratio) / np.log(source_ratio) >= POWER_FROM_LOG_RATIO:
        return "power"
    return "budget"


HISTORY = Preset("history", "assistant", agent={"rebase_preloaded": True, "sigma_min": 0.05},
                 assistant={"handover": "earned", "incumbent": 5, "keep_until": 300},
                 records_rescale=records_rescale)
