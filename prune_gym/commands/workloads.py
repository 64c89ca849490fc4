"""`prune-gym models` and `prune-gym pretrain`: the workloads that searches run on."""

from __future__ import annotations

import argparse

from prune_gym.datasets import dataset_names
from prune_gym.macs import count_macs, count_params
from prune_gym.models import CANONICAL_INPUT, build_model, model_names
from prune_gym.pretrain import Recipe, SplitSpec, pretrain


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    models = subparsers.add_parser("models", help="list the model zoo with parameters and MACs")
    models.set_defaults(func=run_models)

    p = subparsers.add_parser("pretrain", help="train a zoo model on a data set and cache the checkpoint")
    p.add_argument("--model", required=True, choices=model_names(), metavar="MODEL",
                   help=f"one of: {', '.join(model_names())}")
    p.add_argument("--dataset", required=True, choices=dataset_names(), metavar="DATASET",
                   help=f"one of: {', '.join(dataset_names())}")
    p.add_argument("--data-root", help="directory holding the data set (default: Debian's package or the cache)")
    p.add_argument("--calibration-size", type=int, default=SplitSpec.calibration_size,
                   help="training images held out for reconstruction")
    p.add_argument("--reward-size", type=int, default=SplitSpec.reward_size,
                   help="training images held out to score pruned networks")
    p.add_argument("--split-seed", type=int, default=SplitSpec.seed)
    p.add_argument("--epochs", type=int, default=Recipe.epochs)
    p.add_argument("--batch-size", type=int, default=Recipe.batch_size)
    p.add_argument("--lr", type=float, default=Recipe.max_lr, help="peak learning rate of the one-cycle schedule")
    p.add_argument("--seed", type=int, default=Recipe.seed)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--force", action="store_true", help="retrain even if a cached checkpoint exists")
    p.set_defaults(func=run_pretrain)


def run_models(args: argparse.Namespace) -> int:
    print(f"{'model':<14}{'input':>12}{'params':>14}{'MACs':>16}")
    for name in model_names():
        channels, classes, size = CANONICAL_INPUT[name]
        model = build_model(name, channels, classes, size)
        macs = count_macs(model, (channels, size, size))
        print(f"{name:<14}{f'{size}x{size}x{channels}':>12}{count_params(model):>14,}{macs / 1e6:>14.2f} M")
    return 0


def run_pretrain(args: argparse.Namespace) -> int:
    recipe = Recipe(epochs=args.epochs, batch_size=args.batch_size, max_lr=args.lr, seed=args.seed)
    split = SplitSpec(args.split_seed, args.calibration_size, args.reward_size)
    result = pretrain(args.model, args.dataset, args.data_root, recipe, split, args.device, args.force)
    meta = result.metadata
    verb = "reused cached" if result.reused else f"trained in {meta['train_seconds']:.0f} s,"
    print(f"{meta['model']} on {meta['dataset']}: {verb} test accuracy {100 * meta['test_accuracy']:.2f}%")
    print(f"checkpoint: {result.path}")
    return 0
