"""`prune-gym export`: prune with a given policy and write the slim model."""

from __future__ import annotations

import argparse

import gymnasium as gym
import numpy as np

from prune_gym import ENV_ID
from prune_gym.commands.scenario import add_scenario_arguments, scenario_env_kwargs
from prune_gym.errors import PruneGymError
from prune_gym.export import export_slim, measure_export
from prune_gym.policies import play, random_policy, uniform_policy
from prune_gym.pruner import MODES


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("export", help="prune with a policy and write the slim model and its spec")
    add_scenario_arguments(p)
    p.add_argument("--policy", default="uniform",
                   help="'uniform', 'random', or comma-separated kept fractions, one per unit")
    p.add_argument("--out", required=True, help="directory for model.pt and spec.json")
    p.add_argument("--reconstruction", default="pruned", choices=MODES)
    p.add_argument("--seed", type=int, default=0, help="seed of the random policy")
    p.add_argument("--onnx", action="store_true", help="also write model.onnx, checked against torch")
    p.set_defaults(func=run_export)


def parse_policy(text: str, env: gym.Env, seed: int) -> list[float]:
    units = env.unwrapped.units
    if text == "uniform":
        return uniform_policy(env.unwrapped.budget)
    if text == "random":
        return random_policy(len(units), np.random.default_rng(seed))
    try:
        fractions = [float(f) for f in text.split(",")]
    except ValueError:
        raise PruneGymError(f"--policy must be 'uniform', 'random' or comma-separated numbers, got {text!r}") from None
    if len(fractions) != len(units):
        raise PruneGymError(f"--policy has {len(fractions)} fractions but the model has {len(units)} units")
    return fractions


def run_export(args: argparse.Namespace) -> int:
    env = gym.make(ENV_ID, model=args.model, dataset=args.dataset, target_ratio=args.ratio, device=args.device,
                   checkpoint=args.checkpoint, data_root=args.data_root, reconstruction=args.reconstruction,
                   **scenario_env_kwargs(args))
    info = play(env, parse_policy(args.policy, env, args.seed))
    spec = export_slim(env, args.out, info)
    print_speed(measure_export(args.out, env.unwrapped.workload.model, env.unwrapped.device, args.onnx))
    print(f"{'unit':<24}{'channels':>10}{'kept':>8}")
    for unit, kept in zip(env.unwrapped.units, info["kept_channels_per_unit"]):
        print(f"{unit.producer:<24}{unit.channels:>10}{kept:>8}")
    print(f"accuracy {100 * info['accuracy']:.2f}% (reward split; original {100 * info['original_accuracy']:.2f}%), "
          f"MACs ratio {info['macs_ratio']:.4f}, params ratio {info['params_ratio']:.4f}")
    print(f"wrote {spec.parent / 'model.pt'} and {spec}")
    return 0


def print_speed(spec: dict) -> None:
    """The export's measured speed (and ONNX check), in two lines."""
    speed = spec["speed"]
    slim, original = speed["slim"], speed["original"]
    print(f"measured on {speed['device']} ({speed['threads']} threads): batch 1 {slim['latency_ms']:.2f} ms against "
          f"{original['latency_ms']:.2f} ms ({speed['latency_speed_up']:.2f}x), batch {slim['batch']} "
          f"{slim['throughput']:.0f} against {original['throughput']:.0f} images/s "
          f"({speed['throughput_speed_up']:.2f}x)")
    if "onnx" in spec:
        print(f"model.onnx: onnxruntime {spec['onnx']['onnxruntime']} matches torch within "
              f"{spec['onnx']['max_abs_difference']:.1e}")
