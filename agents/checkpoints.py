"""The searcher's state after each committed trial, next to the history file: <history>.agents/<run>/.

Each commit writes the searcher into a fresh folder `trial-N/`, then replaces `state.json`
(the commit point), which names that folder and holds trial N itself; older folders go
afterwards. A process killed at any moment leaves either the old or the new state whole.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import gymnasium as gym

from prune_gym.agents.recorder import Trial
from prune_gym.agents.searcher import Searcher


class SearcherCheckpoints:
    def __init__(self, history_path: Path, run_id: str):
        self.dir = Path(f"{history_path}.agents") / run_id
        self.dir.mkdir(parents=True, exist_ok=True)

    def save(self, searcher: Searcher, trials: int, last: Trial) -> None:
        """Save the searcher after `trials` trials, the last of them `last`."""
        folder = self.dir / f"trial-{trials}"
        shutil.rmtree(folder, ignore_errors=True)  # a half-written one from a killed process
        folder.mkdir()
        searcher.save(folder)
        tmp = self.dir / "state.json.tmp"
        tmp.write_text(json.dumps({"trials": trials, "folder": folder.name, "last_trial": last.to_json()}))
        os.replace(tmp, self.dir / "state.json")  # the commit point
        for old in self.dir.iterdir():
            if old.name != folder.name and old.name != "state.json":
                shutil.rmtree(old) if old.is_dir() else old.unlink()

    def load(self, searcher_class: type[Searcher], env: gym.Env) -> tuple[Searcher | None, int, Trial | None]:
        """The last saved searcher, its trial count and last trial; (None, 0, None) when nothing was saved."""
        state_path = self.dir / "state.json"
        if not state_path.exists():
            return None, 0, None
        state = json.loads(state_path.read_text())
        searcher = searcher_class.load(self.dir / state["folder"], env)
        return searcher, state["trials"], Trial.from_json(state["last_trial"])
