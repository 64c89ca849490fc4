"""Which torchvision classifiers prune, and how far: the unit discovery over every one of them.

For each classification model of `torchvision.models.list_models(module=torchvision.models)`,
with random weights, 10 classes and small inputs (64 x 64, or 224 where the architecture
needs it), it records whether an env builds or is refused (and why), its units, the share
of the conv and linear MACs that some unit controls, the lowest reachable ratio p (every
unit at its 5% minimum), and, at p = 0.5 and 0.3 where reachable, whether a uniform
episode ends within budget and its slim export, loaded into a fresh instance, gives the
pruned network's logits. Episodes keep each unit's largest filters (`reconstruction="magnitude"`):
what is measured is the graph, the budget and the export, not the refit, whose least
squares on a VGG's 25,088-column classifier input would dominate the time. Torch-Pruning's
DependencyGraph, the other unit-discovery backend we could build on, is tried beside it: the
pruning groups it finds on the same model and the share of the MACs in layers they touch.

Each model runs in a process of its own, within `--memory-gb` of memory; each finished one
is appended to `<out>/coverage.jsonl`, so an interrupted run resumes. Models over
`--max-params` million parameters are skipped (memory).

    .venv/bin/python benchmarks/coverage.py --out runs/coverage [--models resnet18 regnet_x_400mf]
    .venv/bin/python benchmarks/coverage.py --out benchmarks/data --report   # the table, from the committed rows
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from prune_gym.budgets import MacsBudget
from prune_gym.env import ChannelPruneEnv
from prune_gym.export import export_slim, load_slim
from prune_gym.macs import layer_costs
from prune_gym.policies import play, uniform_policy
from prune_gym.workload import Workload

RATIOS = (0.5, 0.3)
SMALL, LARGE = 64, 224  # input sizes: small where the model accepts it
ENV_SETTINGS = {"device": "cpu", "reconstruction": "magnitude", "calibration_images": 8, "batch_size": 8}


def classifiers() -> list[str]:
    import torchvision

    return sorted(torchvision.models.list_models(module=torchvision.models))


def build(name: str) -> torch.nn.Module:
    import torchvision

    kwargs: dict[str, Any] = {"weights": None, "num_classes": 10}
    if name in ("googlenet", "inception_v3"):
        kwargs["aux_logits"] = False
        kwargs["init_weights"] = False
    return torchvision.models.get_model(name, **kwargs)


def input_size(model: torch.nn.Module) -> int:
    """64 when a forward pass accepts it, else 224."""
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, 3, SMALL, SMALL))
        return SMALL
    except Exception:  # a fixed patch grid, or too many stride-2 stages
        return LARGE


def torch_pruning_coverage(model: torch.nn.Module, size: int) -> dict[str, Any]:
    """The pruning groups Torch-Pruning's DependencyGraph finds over conv and linear output channels (the
    classifier left whole) and the share of the MACs in layers they touch; or why it fails."""
    import torch_pruning as tp

    try:
        graph = tp.DependencyGraph().build_dependency(model, example_inputs=torch.zeros(1, 3, size, size),
                                                      verbose=False)
        head = [m for m in model.modules() if isinstance(m, torch.nn.Linear) and m.out_features == 10]
        groups = list(graph.get_all_groups(ignored_layers=head))
    except Exception as exc:  # torch-pruning raises many kinds on models it cannot follow
        return {"tp_status": f"fails: {type(exc).__name__}: {str(exc).splitlines()[0][:100] if str(exc) else ''}"}
    names = {module: name for name, module in model.named_modules()}
    touched = {names.get(dep.target.module) for group in groups for dep, _ in group}
    costs = layer_costs(model, (3, size, size))
    share = sum(c.macs for c in costs if c.name in touched) / max(1, sum(c.macs for c in costs))
    return {"tp_status": "builds", "tp_groups": len(groups), "tp_macs_share": share}


def measure(name: str, max_params: float) -> dict[str, Any]:
    torch.manual_seed(0)
    model = build(name).eval()
    params = sum(p.numel() for p in model.parameters()) / 1e6
    row: dict[str, Any] = {"model": name, "params_m": round(params, 2)}
    if params > max_params:
        return {**row, "status": f"skipped: over {max_params:g}M parameters (memory)"}
    size = input_size(model)
    row["input"] = size
    row.update(torch_pruning_coverage(build(name).eval(), size))
    images, labels = torch.randn(16, 3, size, size), torch.randint(0, 10, (16,))
    workload = Workload.from_module(model, [(images[:8], labels[:8])], [(images[8:], labels[8:])], name=name)
    start = time.perf_counter()
    try:
        env = ChannelPruneEnv(workload=workload, target_ratio=1.0, **ENV_SETTINGS)
    except Exception as exc:  # what a user would see: the refusal's first line
        return {**row, "status": f"refused: {type(exc).__name__}: {str(exc).splitlines()[0][:160]}"}
    graph = env.graph
    whole = MacsBudget(graph, 1.0, env.budget.min_keep)
    in_units = sum(layer.macs for layer in graph.layers if layer.in_unit is not None or layer.out_unit is not None)
    row.update(status="builds", units=len(graph.units), unit_macs_share=in_units / graph.total_macs,
               min_ratio=whole.ratio(whole.min_channels), frozen_reasons=sorted(set(graph.frozen.values()))[:6],
               build_seconds=round(time.perf_counter() - start, 1))
    for ratio in RATIOS:
        if ratio < row["min_ratio"]:
            row[f"p{ratio}"] = "unreachable"
            continue
        try:
            env = ChannelPruneEnv(workload=workload, target_ratio=ratio, **ENV_SETTINGS)
            info = play(env, uniform_policy(env.budget))
            with tempfile.TemporaryDirectory() as out:
                export_slim(env, out, info)
                slim = load_slim(out, model=build(name))
                with torch.no_grad():
                    same = torch.allclose(slim(images), env.pruned_network(images), rtol=1e-4, atol=1e-5)
            row[f"p{ratio}"] = f"{info['macs_ratio']:.3f}{'' if info['macs_ratio'] <= ratio else ' OVER'}" + \
                ("" if same else ", export differs")
        except Exception as exc:
            row[f"p{ratio}"] = f"crashed: {type(exc).__name__}: {str(exc).splitlines()[0][:120]}"
    return row


def reason_kind(reason: str) -> str:
    """A freeze reason without the node or module it names: what kind of coupling it is."""
    for marker in (" at node ", " at ", " reads "):
        reason = reason.split(marker)[0]
    return reason.removeprefix("parts of a tensor (")


def table(rows: list[dict[str, Any]]) -> str:
    """The coverage table in Markdown, a summary first."""
    built = [r for r in rows if r["status"] == "builds"]
    reach = [r for r in built if r["min_ratio"] <= 0.3]
    tp = [r for r in rows if r.get("tp_status") == "builds"]
    lines = [f"{len(rows)} models: {len(built)} build, {len(reach)} of them reach p = 0.3; "
             f"{sum(r['status'].startswith('refused') for r in rows)} refused, "
             f"{sum(r['status'].startswith('skipped') for r in rows)} skipped. Torch-Pruning's DependencyGraph "
             f"builds on {len(tp)}.", "",
             "| model | params (M) | input | builds | units | MACs in units | lowest p | p = 0.5 | p = 0.3 | "
             "what stays whole | TP groups | TP MACs |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        kinds = ", ".join(sorted({reason_kind(x) for x in r.get("frozen_reasons", [])} - {"network output"}))
        status = "yes" if r["status"] == "builds" else r["status"].replace("|", "/")
        share = f"{r['unit_macs_share']:.0%}" if "unit_macs_share" in r else "-"
        low = f"{r['min_ratio']:.2f}" if "min_ratio" in r else "-"
        tp_groups = r.get("tp_groups", r.get("tp_status", "-"))
        tp_share = f"{r['tp_macs_share']:.0%}" if "tp_macs_share" in r else "-"
        lines.append(f"| {r['model']} | {r.get('params_m', '-')} | {r.get('input', '-')} | {status} | "
                     f"{r.get('units', '-')} | {share} | {low} | {r.get('p0.5', '-')} | {r.get('p0.3', '-')} | "
                     f"{kinds or '-'} | {tp_groups} | {tp_share} |")
    return "\n".join(lines)


def run_one(name: str, path: Path, max_params: float, memory_gb: float) -> dict[str, Any]:
    """`measure(name)` in a process of its own, within `memory_gb` of address space (a few models' graphs
    take tens of gigabytes), appended to `path`; a process that dies is recorded as such."""
    limit = int(memory_gb * 2**30)
    child = subprocess.run([sys.executable, __file__, "--one", name, "--out", str(path.parent),
                            "--max-params", str(max_params)], capture_output=True, text=True,
                           preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (limit, limit)))
    rows = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    row = next((r for r in rows if r["model"] == name), None)
    if row is None:
        why = (child.stderr.strip().splitlines() or ["no output"])[-1][:120]
        row = {"model": name, "status": f"skipped: its process failed within {memory_gb:g} GB ({why})"}
        _append(path, row)
    return row


def _append(path: Path, row: dict[str, Any]) -> None:
    with path.open("a") as f:
        f.write(json.dumps(row) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/coverage"))
    parser.add_argument("--models", nargs="+", help="default: every torchvision classifier")
    parser.add_argument("--max-params", type=float, default=300.0, help="skip models over this many million")
    parser.add_argument("--memory-gb", type=float, default=16.0, help="address space each model may use")
    parser.add_argument("--report", action="store_true", help="print the table of what `--out` holds")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # the child process of one model
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "coverage.jsonl"
    if args.report:
        order = {name: i for i, name in enumerate(classifiers())}
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        print(table(sorted(rows, key=lambda r: order.get(r["model"], len(order)))))
        return
    if args.one:
        _append(path, measure(args.one, args.max_params))
        return
    done = {json.loads(line)["model"] for line in path.read_text().splitlines()} if path.exists() else set()
    names = [n for n in (args.models or classifiers()) if n not in done]
    for name in tqdm(names, desc="coverage", unit="model"):
        row = run_one(name, path, args.max_params, args.memory_gb)
        tqdm.write(f"{name}: {row['status']} {row.get('units', '')} {row.get('p0.3', '')}")


if __name__ == "__main__":
    main()
