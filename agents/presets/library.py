"""`library`: how the default search draws on a past run that kept no network weights.

The runs of the history library that ships with prune-gym (`prune_gym.history.library`) keep
every trial but no searcher's weights, which are megabytes a run. A search by this preset
takes what the `history` preset takes from them, the source's trials (preloaded, and the
assistant's records), and starts its own network from scratch. The assistant plays the first
30 trials from the source's policies and around the search's own best, then hands over for
good: a black-box searcher gains more from every later trial of its own than from the
assistant's kept turns, which an RL actor needs while it learns (the `history` preset keeps
them). CMA-ES, the command line's searcher for a run of the same network, starts at the mean
of the 5 best policies the search played before it (`x0_top`). From another network's run the
assistant's first trials race the records as they are against the records shrunk halfway to
each policy's mean (`ShrinkRace`): the source's structure, mapped unit by unit, suits a network
like it (ResNet-20's into ResNet-56) and misleads one unlike it (into MobileNet v1). The default
search (`prune-gym search` without `--source`) draws on history by it.
"""

from __future__ import annotations

from prune_gym.agents.presets import Preset

LIBRARY = Preset("library", "history", agent={"x0_top": 5}, assistant={"handover": "fixed", "keep_until": 0},
                 assistant_across_models={"shrink": 0.5, "shrink_race": 4}, weights=False)
