"""`prune-gym finetune DIR`: fine-tune a slim export on its data set's training images."""

from __future__ import annotations

import argparse
import sys

from prune_gym.finetune import SCHEDULES, FinetuneRecipe, finetune_export


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("finetune", help="fine-tune a slim export (resumable by epoch)")
    p.add_argument("export", metavar="DIR", help="a directory written by `prune-gym export` or `search --out`")
    p.add_argument("--epochs", type=int, default=FinetuneRecipe.epochs)
    p.add_argument("--batch-size", type=int, default=FinetuneRecipe.batch_size)
    p.add_argument("--lr", type=float, default=FinetuneRecipe.lr, help="the schedule's peak learning rate")
    p.add_argument("--schedule", default=FinetuneRecipe.schedule, choices=SCHEDULES)
    p.add_argument("--distill", type=float, default=FinetuneRecipe.distill,
                   help="weight in [0, 1] of distillation from the unpruned model (0: none)")
    p.add_argument("--seed", type=int, default=FinetuneRecipe.seed)
    p.add_argument("--checkpoint", help="the unpruned weights the export came from (default: the cached ones)")
    p.add_argument("--data-root")
    p.add_argument("--device", default="auto")
    p.add_argument("--restart", action="store_true", help="start again instead of resuming an interrupted run")
    p.set_defaults(func=run_finetune)


def run_finetune(args: argparse.Namespace) -> int:
    recipe = FinetuneRecipe(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, schedule=args.schedule,
                            distill=args.distill, seed=args.seed)
    result = finetune_export(args.export, recipe, args.device, args.checkpoint, args.data_root, args.restart)
    if result.resumed_from_epoch:
        print(f"resumed after epoch {result.resumed_from_epoch} of {recipe.epochs}")
    print(f"test accuracy {100 * result.test_accuracy_before:.2f}% -> {100 * result.test_accuracy_after:.2f}% "
          f"after {recipe.epochs} epoch{'s' * (recipe.epochs != 1)} ({result.seconds:.0f} s); wrote {result.path}")
    if result.note_error:
        print(f"prune-gym: warning: the search's run was not told of the fine-tune: {result.note_error}",
              file=sys.stderr)
    return 0
