"""`library`: the `history` preset for a source that kept no network weights: its trials and the assistant.

The runs of the history library that ships with prune-gym (`prune_gym.history.library`) keep
every trial but no searcher's weights, which are megabytes a run. A search by this preset
takes what the `history` preset takes from them, the source's trials (preloaded, and the
assistant's records) and the assistant's settings, and starts its own network from scratch;
CMA-ES starts at the mean of the source's 5 best policies rewritten for the target
(`x0_top`). The default search (`prune-gym search` without `--source`) draws on history by it.
"""

from __future__ import annotations

from prune_gym.agents.presets import Preset

LIBRARY = Preset("library", "history", agent={"x0_top": 5}, weights=False)
