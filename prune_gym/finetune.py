"""Fine-tuning a slim model: a few epochs of SGD on the training images, resumable by epoch.

A search ends with a pruned network whose weights were refit by reconstruction but never
trained; every pruning tool ends with a short fine-tune, which recovers much of what pruning
lost. The recipe is SGD with Nesterov momentum under a cosine (or one-cycle) learning rate,
with the pretraining's crops and flips, and optionally a distillation term towards the
unpruned model's outputs. After each epoch the whole state (weights, optimizer, schedule,
shuffling) is written atomically, so a killed fine-tune resumes after its last epoch and
ends with the same weights as one that was never interrupted.
"""

from __future__ import annotations

import itertools
import json
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from prune_gym.checkpoints import load_weights, read_checkpoint, state_digest
from prune_gym.datasets import DataSplits
from prune_gym.devices import resolve_device
from prune_gym.errors import PruneGymError
from prune_gym.evaluation import accuracy
from prune_gym.export import FINETUNE_RESULT_FILE, FINETUNE_STATE_FILE, FINETUNED_FILE, load_slim, read_spec
from prune_gym.history import HistoryStore
from prune_gym.history.errors import HistoryError
from prune_gym.models import build_model
from prune_gym.pretrain import checkpoint_splits, default_checkpoint

SCHEDULES = ("cosine", "one-cycle")
Batches = Iterable[tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class FinetuneRecipe:
    """How a slim model is fine-tuned; `distill` > 0 adds that weight of a KL term towards the unpruned
    model's softened outputs (temperature `temperature`), the cross-entropy keeping 1 - distill."""

    epochs: int = 3
    batch_size: int = 128
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "cosine"
    distill: float = 0.0
    temperature: float = 4.0
    seed: int = 0

    def validate(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0:
            raise PruneGymError("fine-tuning needs at least one epoch, a positive batch size and learning rate")
        if self.schedule not in SCHEDULES:
            raise PruneGymError(f"unknown schedule {self.schedule!r}; choose from {', '.join(SCHEDULES)}")
        if not 0 <= self.distill <= 1:
            raise PruneGymError(f"distill is the KL term's weight, in [0, 1]; got {self.distill}")
        if self.temperature <= 0:
            raise PruneGymError(f"the distillation temperature must be positive; got {self.temperature}")


def finetune(model: nn.Module, epoch_batches: Callable[[torch.Generator], Batches], steps_per_epoch: int,
             recipe: FinetuneRecipe = FinetuneRecipe(), device: str | torch.device = "cpu",
             teacher: nn.Module | None = None, state_path: str | Path | None = None,
             progress: bool = True) -> int:
    """Fine-tune `model` in place; returns the epoch it started from (0, or where a saved state left off).

    :param epoch_batches: called once per epoch with the fine-tune's generator, yields (images, labels)
        on `device`; shuffle and augment with that generator for a resume to repeat the same epochs
    :param steps_per_epoch: the batches an epoch yields (the schedule is laid out over them)
    :param teacher: the unpruned model, needed when the recipe distils
    :param state_path: where the state is saved after each epoch and resumed from
    """
    recipe.validate()
    if recipe.distill > 0 and teacher is None:
        raise PruneGymError("a recipe that distils needs the unpruned model as teacher")
    device = torch.device(device)
    model.to(device)
    generator = torch.Generator().manual_seed(recipe.seed)
    optimizer = torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=recipe.momentum,
                                weight_decay=recipe.weight_decay, nesterov=True)
    total = recipe.epochs * steps_per_epoch
    if recipe.schedule == "cosine":
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, total)
    else:
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, recipe.lr, total_steps=total,
                                                       cycle_momentum=False)  # the recipe's momentum throughout
    start = _resume(Path(state_path), recipe, model, optimizer, schedule, generator) if state_path else 0
    if teacher is not None:
        teacher.to(device).eval()
    for epoch in range(start, recipe.epochs):
        model.train()
        bar = tqdm(epoch_batches(generator), total=steps_per_epoch, desc=f"fine-tune {epoch + 1}/{recipe.epochs}",
                   disable=not progress, leave=False)
        for x, y in bar:
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            if recipe.distill > 0:
                with torch.no_grad():
                    target = F.softmax(teacher(x) / recipe.temperature, dim=1)
                kl = F.kl_div(F.log_softmax(logits / recipe.temperature, dim=1), target, reduction="batchmean")
                loss = (1 - recipe.distill) * loss + recipe.distill * recipe.temperature ** 2 * kl
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
        if state_path:
            _save_state(Path(state_path), epoch + 1, recipe, model, optimizer, schedule, generator)
    model.eval()
    return start


def finetune_on_splits(model: nn.Module, splits: DataSplits, recipe: FinetuneRecipe = FinetuneRecipe(),
                       device: str | torch.device = "cpu", steps_per_epoch: int | None = None,
                       teacher: nn.Module | None = None, state_path: str | Path | None = None,
                       progress: bool = True) -> int:
    """`finetune` on the training images of `splits`, shuffled and augmented by the fine-tune's generator
    (so that a resume repeats the same epochs); returns the epoch it started from.

    :param steps_per_epoch: batches an epoch (None: the whole training split; fewer for a short fine-tune)
    """
    full = -(-len(splits.train) // recipe.batch_size)
    steps = full if steps_per_epoch is None else min(steps_per_epoch, full)
    return finetune(model, lambda g: itertools.islice(splits.train.batches(
        recipe.batch_size, device, shuffle=True, augment=True, generator=g), steps), steps, recipe, device,
        teacher, state_path, progress)


def _save_state(path: Path, epochs_done: int, recipe: FinetuneRecipe, model: nn.Module,
                optimizer: torch.optim.Optimizer, schedule: Any, generator: torch.Generator) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"epochs_done": epochs_done, "recipe": asdict(recipe), "model": model.state_dict(),
                "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(),
                "generator": generator.get_state()}, tmp)
    os.replace(tmp, path)


def _resume(path: Path, recipe: FinetuneRecipe, model: nn.Module, optimizer: torch.optim.Optimizer,
            schedule: Any, generator: torch.Generator) -> int:
    """Load a saved state into the fine-tune's objects; the epochs it had done (0 without one)."""
    if not path.exists():
        return 0
    state = torch.load(path, map_location="cpu", weights_only=True)
    if state["recipe"] != asdict(recipe):
        raise PruneGymError(f"{path} holds an interrupted fine-tune with another recipe ({state['recipe']}); "
                            f"delete it (or pass --restart) to start again")
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    schedule.load_state_dict(state["schedule"])
    generator.set_state(state["generator"])
    return int(state["epochs_done"])


@dataclass
class FinetuneResult:
    """What `finetune_export` measured and wrote."""

    test_accuracy_before: float
    test_accuracy_after: float
    resumed_from_epoch: int
    seconds: float
    path: Path  # the fine-tuned weights
    note_error: str | None = None  # why the run the export came from could not be told, if it could not


def finetune_export(export_dir: str | Path, recipe: FinetuneRecipe = FinetuneRecipe(), device: str = "auto",
                    checkpoint: str | Path | None = None, data_root: str | Path | None = None,
                    restart: bool = False, progress: bool = True) -> FinetuneResult:
    """Fine-tune a zoo model's slim export on its data set's training images; writes `finetuned.pt` and
    `finetune.json` (the recipe, the test accuracy before and after) next to the export, and into the
    notes of the run the export came from (`prune-gym search --out`).

    :param checkpoint: the unpruned weights the export was pruned from (default: `default_checkpoint`); their digest must match the export's, and their split keeps the held-out images out
    :param restart: discard an interrupted fine-tune's state instead of resuming it
    """
    recipe.validate()
    out = Path(export_dir)
    spec = read_spec(out)
    if not spec.get("build"):
        raise PruneGymError(f"{out} is a user's model ({spec['model']}): fine-tune it from Python with "
                            f"prune_gym.finetune.finetune and its own loaders")
    path = Path(checkpoint) if checkpoint else default_checkpoint(spec["model"], spec["dataset"])
    weights_state, metadata = read_checkpoint(path)
    if (metadata.get("digest") or state_digest(weights_state)) != spec["checkpoint_digest"]:
        raise PruneGymError(f"{path} holds other weights than the ones {out} was pruned from; pass --checkpoint")
    torch_device = resolve_device(device)
    splits = checkpoint_splits(metadata, spec["dataset"], data_root)
    model = load_slim(out)
    teacher = None
    if recipe.distill > 0:
        teacher = build_model(spec["model"], **spec["build"])
        load_weights(teacher, path)
    state = out / FINETUNE_STATE_FILE
    if restart:
        state.unlink(missing_ok=True)
    before = accuracy(model.to(torch_device), splits.test.batches(500, torch_device))
    start = time.perf_counter()
    resumed = finetune_on_splits(model, splits, recipe, torch_device, teacher=teacher, state_path=state,
                                 progress=progress)
    seconds = time.perf_counter() - start
    after = accuracy(model, splits.test.batches(500, torch_device))
    weights = out / FINETUNED_FILE
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, out / (FINETUNED_FILE + ".tmp"))
    os.replace(out / (FINETUNED_FILE + ".tmp"), weights)
    result = {"recipe": asdict(recipe), "test_accuracy_before": before, "test_accuracy_after": after,
              "train_images": len(splits.train), "seconds": round(seconds, 1), "device": str(torch_device),
              "resumed_from_epoch": resumed}
    tmp = out / (FINETUNE_RESULT_FILE + ".tmp")
    tmp.write_text(json.dumps(result, indent=2))
    os.replace(tmp, out / FINETUNE_RESULT_FILE)
    note_error = _note_in_history(spec, {"export": str(out.resolve()), **result})
    state.unlink(missing_ok=True)  # last: until here a re-run resumes after the last epoch, training nothing
    return FinetuneResult(before, after, resumed, seconds, weights, note_error)


def _note_in_history(spec: dict[str, Any], note: dict[str, Any]) -> str | None:
    """Record the fine-tune in the run an export came from, when that history file is still here;
    why it could not be (the file is busy or damaged, the run gone), else None."""
    source = spec.get("source_run")
    if not source or not Path(source["history"]).exists():
        return None
    try:
        with HistoryStore(source["history"], "a") as store:
            store.annotate(source["run_id"], "finetune", note)
    except HistoryError as exc:
        return str(exc)
    return None
