"""The deployable league: the project's slim model against Torch-Pruning's after the same fine-tune, over seeds.

For a model and ratio p, five slim models at the same MACs (or fewer):
* `searched`: the best policy a search found (`--policy-from`: the directory `prune-gym search --out`
  exported, or its spec.json), pruned and refit by the env with the search's env options (the
  residual streams as units where the search had them);
* `uniform`: our uniform policy (one kept fraction for every unit) in that same env;
* `tp-uniform`, `tp-global`, `tp-isomorphic`: Torch-Pruning's L2-magnitude pruning, uniform, global
  or isomorphic (`prune_gym.alternatives.torch_pruning_at_macs`), of every layer its dependency graph
  can prune, or of our units' layers where the model it prunes whole does not run (ResNet-20's
  zero-padded shortcut), at the searched model's MACs or fewer.
A Torch-Pruning model equal to an earlier one, weight for weight, is not fine-tuned again: the
report lists it as the same. Each slim model is fine-tuned by the project's recipe
(`prune_gym.finetune`) once per fine-tune seed and scored on the test split; one JSON line per
(slim model, seed) is appended to `--record` as each finishes, so a killed run resumes with the
next. `--speed` measures each slim model's batch-1 latency against the original, and the searched
model's against each Torch-Pruning model, in pairs (run it with nothing else on the machine, a few
times: each run adds its rows). `--report` prints, per scenario, each model's test accuracy after
fine-tuning (mean and 90% bootstrap interval over seeds) and speed-up (median over the runs), and
the searched model's lead over the best Torch-Pruning model, in accuracy and in speed.

    prune-gym search --ratio 0.2 --residual-streams --trials 300 --out runs/deploy/resnet20-p0.2-streams
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/deployable_league.py --jobs 2 \\
        --policy-from runs/deploy/resnet20-p0.2-streams --label "default search, streams, 300 trials"
    .venv/bin/python benchmarks/deployable_league.py --policy-from runs/deploy/resnet20-p0.2-streams --speed
    .venv/bin/python benchmarks/deployable_league.py --report --into benchmarks/RESULTS.md
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from torch import nn

import prune_gym
from prune_gym.alternatives import TORCH_PRUNING_METHODS, torch_pruning_at_macs, unit_layers
from prune_gym.benchmarks.quality import interval, resampled_means
from prune_gym.benchmarks.results_file import add_into_argument, deployable_league_markers, print_or_write
from prune_gym.benchmarks.study import committed_checkpoint
from prune_gym.checkpoints import read_checkpoint
from prune_gym.cluster import open_backend
from prune_gym.devices import resolve_device
from prune_gym.errors import PruneGymError
from prune_gym.evaluation import accuracy
from prune_gym.export import export_slim, load_slim, read_spec
from prune_gym.finetune import FinetuneRecipe, finetune_on_splits
from prune_gym.macs import count_macs
from prune_gym.policies import play, uniform_policy
from prune_gym.pretrain import checkpoint_splits
from prune_gym.speed import MIN_RUN_SECONDS, paired_latency

RECORD = Path(__file__).resolve().parent / "data" / "deployable-league.jsonl"
OURS = ("searched", "uniform")
CANDIDATES = (*OURS, *(f"tp-{m}" for m in TORCH_PRUNING_METHODS))
SEEDS = (0, 1, 2)


def scenario_key(spec: dict) -> dict:
    """What names a scenario in the record: the searched export's model, ratio and env options."""
    return {"model": spec["model"], "dataset": spec["dataset"], "ratio": spec["target_ratio"],
            "residual_streams": bool(spec.get("residual_streams", False))}


def make_env(spec: dict, checkpoint: str | Path, data_root: str | Path | None = None) -> gym.Env:
    """The env the search of export `spec` pruned in, on `checkpoint`, which must hold the weights it pruned."""
    env = gym.make(prune_gym.ENV_ID, model=spec["model"], dataset=spec["dataset"], target_ratio=spec["target_ratio"],
                   device="cpu", checkpoint=str(checkpoint), data_root=data_root,
                   residual_streams=bool(spec.get("residual_streams")))
    if env.unwrapped.workload.digest != spec["checkpoint_digest"]:
        raise PruneGymError(f"{checkpoint} holds other weights than the search pruned; pass its --checkpoint")
    return env


def build_slims(env: gym.Env, policy: list[float], inner_layers: set[str], work: Path) -> dict[str, str | None]:
    """Each candidate's slim model saved in `work` as <candidate>.pt (a whole module), and for a Torch-Pruning
    model equal to an earlier candidate's, that candidate's name instead; None where Torch-Pruning cannot prune
    to the searched model's MACs; by candidate. Made once per policy: a rerun reads them back. Torch-Pruning
    prunes `inner_layers` (our units' with the residual streams whole) where it cannot prune every layer."""
    manifest = work / "slims.json"
    if manifest.exists():
        made = json.loads(manifest.read_text())
        if made["policy"] == policy and all((work / f"{n}.pt").exists() for n, same in made["built"].items()
                                            if same == n):
            return made["built"]
    unwrapped = env.unwrapped
    shape = unwrapped.workload.input_shape
    original = unwrapped.workload.model.cpu().eval()
    work.mkdir(parents=True, exist_ok=True)
    models: dict[str, nn.Module | None] = {}
    for name, fractions in (("searched", policy), ("uniform", uniform_policy(unwrapped.budget))):
        info = play(env, fractions)
        export_slim(env, work / name, info)
        models[name] = load_slim(work / name).cpu().eval()
    budget = count_macs(models["searched"], shape)
    for method in TORCH_PRUNING_METHODS:
        try:
            models[f"tp-{method}"] = torch_pruning_at_macs(original, shape, budget, "all", inner_layers, method)
        except PruneGymError:  # its graph mis-groups the whole network: the layers our units hold
            try:
                models[f"tp-{method}"] = torch_pruning_at_macs(original, shape, budget, "units", inner_layers,
                                                               method)
            except PruneGymError as exc:  # e.g. global ranking, at most 90% of a layer, above a tight budget
                print(f"tp-{method}: {exc}")
                models[f"tp-{method}"] = None
    built: dict[str, str | None] = {}
    for name, model in models.items():
        if model is None:
            built[name] = None
            continue
        same = next((other for other in built if built[other] == other and _same_weights(models[other], model)),
                    None)
        built[name] = same or name
        if same is None:
            torch.save(model, work / f"{name}.pt")
    manifest.write_text(json.dumps({"policy": policy, "built": built}))  # last: the models above are all saved
    return built


def _same_weights(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(sa[k].shape == sb[k].shape and torch.equal(sa[k], sb[k]) for k in sa)


def finetune_one(slim_path: Path, spec: dict, checkpoint: str, data_root: str | None, seed: int, epochs: int,
                 row: dict, record: Path, *, threads: int | None = None, device: str = "cpu") -> None:
    """Fine-tune the saved slim model with `seed` on `device` and append its row (test accuracy before and after)
    to `record`; the test images are those `checkpoint`'s training left out. A task of `prune_gym.cluster`,
    which sets the process's `threads`."""
    if threads is not None:
        torch.set_num_threads(threads)
    device = resolve_device(device)
    slim = torch.load(slim_path, weights_only=False).to(device)
    splits = checkpoint_splits(read_checkpoint(checkpoint)[1], spec["dataset"], data_root)
    recipe = FinetuneRecipe(epochs=epochs, seed=seed)
    before = accuracy(slim, splits.test.batches(500, device))
    start = time.perf_counter()
    finetune_on_splits(slim, splits, recipe, device, progress=False)
    after = accuracy(slim, splits.test.batches(500, device))
    shape = tuple(spec["input_shape"])
    append_rows(record, [{**row, "seed": seed, "epochs": epochs, "test_before": before, "test_after": after,
                          "seconds": time.perf_counter() - start, "macs": count_macs(slim.cpu(), shape)}])


def append_rows(record: Path, rows: list[dict]) -> None:
    """`rows` as JSON lines at the end of `record`, after ending the line a killed writer left unfinished."""
    unfinished = record.exists() and record.stat().st_size > 0 and record.read_bytes()[-1:] != b"\n"
    with record.open("a") as f:
        f.write(("\n" if unfinished else "") + "".join(json.dumps(row) + "\n" for row in rows))


def read_record(record: Path) -> list[dict]:
    """The record's rows; a line cut short by a killed process is skipped."""
    if not record.exists():
        return []
    rows = []
    for line in record.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def run(policy_from: Path, label: str, seeds: list[int], epochs: int, jobs: int, record: Path, work: Path,
        checkpoint: str | None = None, device: str = "cpu", data_root: str | None = None) -> None:
    """Fine-tune every candidate of `policy_from`'s scenario with every seed the record lacks, `jobs` at a time."""
    spec = read_spec(policy_from)
    checkpoint = checkpoint or str(committed_checkpoint(spec["model"], spec["dataset"]))
    env = make_env(spec, checkpoint, data_root)
    policy = [u["kept"] / u["channels"] for u in spec["units"]]
    key = scenario_key(spec)
    inner = unit_layers(make_env({**spec, "residual_streams": False}, checkpoint, data_root))
    built = build_slims(env, policy, inner, work)
    done = {(r["candidate"], r["seed"]) for r in read_record(record)
            if {k: r.get(k) for k in key} == key and r.get("epochs") == epochs and "seed" in r}
    todo = [(name, seed) for name, same in built.items() if same == name for seed in seeds
            if (name, seed) not in done]
    for name, same in built.items():
        if same != name:
            print(f"{name}: " + (f"the same model as {same}" if same else "cannot prune to the searched model's MACs"))
    print(f"{key['model']} p = {key['ratio']:g}: {len(todo)} fine-tunes of {epochs} epochs to run")
    with open_backend("processes", workers=jobs, device=device, threads=1) as backend:
        tasks = [backend.submit(finetune_one, work / f"{name}.pt", spec, checkpoint, data_root, seed, epochs,
                                {**key, "candidate": name, "policy_from": label}, record) for name, seed in todo]
        backend.wait(tasks, poll_seconds=5)
    failed = [f"{name} seed {seed}: {t.error}" for (name, seed), t in zip(todo, tasks) if t.error]
    if failed:
        raise SystemExit("\n".join(failed))
    aliases = [{**key, "candidate": name, **({"same_as": same} if same else {"unreachable": True})}
               for name, same in built.items() if same != name]
    known = read_record(record)
    append_rows(record, [a for a in aliases if a not in known])


def record_speed(policy_from: Path, record: Path, work: Path, checkpoint: str | None = None,
                  data_root: str | None = None, min_run_seconds: float = MIN_RUN_SECONDS) -> None:
    """Each saved slim model's batch-1 latency and speed-up against the original, then the searched model's
    speed over each Torch-Pruning model's, measured head to head (paired, each measurement `min_run_seconds`
    long), appended to `record`."""
    spec = read_spec(policy_from)
    env = make_env(spec, checkpoint or committed_checkpoint(spec["model"], spec["dataset"]), data_root)
    original = env.unwrapped.workload.model.cpu().eval()
    shape = tuple(spec["input_shape"])
    slims = {path.stem: torch.load(path, weights_only=False).eval() for path in sorted(work.glob("*.pt"))}
    for name, slim in slims.items():
        paired = paired_latency(slim, original, shape, "cpu", min_run_seconds=min_run_seconds)
        row = {**scenario_key(spec), "candidate": name, "latency_ms": statistics.median(paired.first_ms),
               "speed_up": 1 / paired.ratio, "threads": torch.get_num_threads()}
        print(f"{name}: {row['latency_ms']:.2f} ms, {row['speed_up']:.2f}x")
        append_rows(record, [row])
    for name in (n for n in slims if n.startswith("tp-")):
        paired = paired_latency(slims["searched"], slims[name], shape, "cpu", min_run_seconds=min_run_seconds)
        print(f"searched: {1 / paired.ratio:.2f}x the speed of {name}")
        append_rows(record, [{**scenario_key(spec), "candidate": "searched", "over": name,
                              "speed_ratio": 1 / paired.ratio, "threads": torch.get_num_threads()}])


def report(rows: list[dict]) -> str:
    """Per scenario and candidate: MACs, test accuracy before and after fine-tuning over seeds, the speed-up;
    then the searched model's lead over the best Torch-Pruning model (interval resampling both's seeds)."""
    scenarios = sorted({(r["model"], r["ratio"], r["residual_streams"]) for r in rows},
                       key=lambda s: (s[0], -s[1], s[2]))
    lines = ["| model | p | slim model | MACs | seeds | test before | test after fine-tuning (90% interval) | "
             "batch-1 speed-up |", "|---|---|---|---|---|---|---|---|"]
    leads = []
    for model, ratio, streams in scenarios:
        mine = [r for r in rows if (r["model"], r["ratio"], r["residual_streams"]) == (model, ratio, streams)]
        tuned = {name: [r for r in mine if r["candidate"] == name and "test_after" in r] for name in CANDIDATES}
        alias = {r["candidate"]: r["same_as"] for r in mine if "same_as" in r}
        speed = {name: statistics.median(r["speed_up"] for r in mine if r["candidate"] == name and "speed_up" in r)
                 for name in {r["candidate"] for r in mine if "speed_up" in r}}
        after = {name: np.array([100 * r["test_after"] for r in tuned[alias.get(name, name)]]) for name in CANDIDATES}
        unreachable = {r["candidate"] for r in mine if r.get("unreachable")}
        for name in CANDIDATES:
            if name in unreachable:
                lines.append(f"| {model} | {ratio:g} | {name} | - | 0 | - | cannot prune to the searched model's "
                             f"MACs | - |")
                continue
            runs = tuned[alias.get(name, name)]
            if not runs:
                continue
            low, high = interval(resampled_means(np.random.default_rng(0), [after[name]])[0])
            label = f"{name} ({runs[0]['policy_from']})" if name == "searched" else name
            label += f", = {alias[name]}" if name in alias else ""
            label += ", residual streams as units" if name in OURS and streams else ""
            s = speed.get(alias.get(name, name))
            lines.append(f"| {model} | {ratio:g} | {label} | {runs[0]['macs'] / 1e6:.2f}M | {len(runs)} | "
                         f"{100 * np.mean([r['test_before'] for r in runs]):.2f}% | {after[name].mean():.2f}% "
                         f"[{low:.2f}, {high:.2f}] | {'-' if s is None else f'{s:.2f}x'} |")
        rivals = {n: after[n] for n in CANDIDATES if n.startswith("tp-") and len(after[n])}
        if len(after["searched"]) and rivals:
            best = max(rivals, key=lambda n: rivals[n].mean())
            a, b = resampled_means(np.random.default_rng(0), [after["searched"], rivals[best]])
            low, high = interval(a - b)
            over = [r["speed_ratio"] for r in mine if r.get("over") == alias.get(best, best)]
            pace = (f", at {statistics.median(over):.2f}x its batch-1 speed (median of {len(over)} head-to-head "
                    f"measurement{'s' if len(over) > 1 else ''}, {min(over):.2f}-{max(over):.2f}x)" if over else "")
            leads.append(f"- {model} p = {ratio:g}: searched {after['searched'].mean() - rivals[best].mean():+.2f} pp "
                         f"[{low:+.2f}, {high:+.2f}] over {best}, the best Torch-Pruning model{pace}")
    return "\n".join(lines + [""] + leads) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--policy-from", type=Path,
                        help="the searched policy's export (`prune-gym search --out`) or its spec.json")
    parser.add_argument("--label", default="searched", help="how the table names the searched policy's origin")
    parser.add_argument("--checkpoint", help="the network's weights (default: the committed ones)")
    parser.add_argument("--seeds", nargs="+", type=int, default=list(SEEDS), help="fine-tune seeds")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=1, help="fine-tunes at a time, one thread each")
    parser.add_argument("--work", type=Path,
                        help="where the slim models are kept (default: runs/deployable-league/<model>-p<ratio>)")
    parser.add_argument("--device", default="cpu", help="where the fine-tunes run (auto, cpu, cuda)")
    parser.add_argument("--record", type=Path, default=RECORD)
    parser.add_argument("--speed", action="store_true", help="measure the slim models' speed only")
    parser.add_argument("--report", action="store_true", help="print the table of the record")
    add_into_argument(parser)
    args = parser.parse_args()
    if args.report:
        print_or_write(report(read_record(args.record)), args.into, deployable_league_markers())
        return
    if args.policy_from is None:
        parser.error("--policy-from is required (or --report)")
    key = scenario_key(read_spec(args.policy_from))
    work = args.work or Path("runs/deployable-league") / (f"{key['model']}-p{key['ratio']:g}"
                                                          + ("-streams" if key["residual_streams"] else ""))
    if args.speed:
        record_speed(args.policy_from, args.record, work, args.checkpoint)
    else:
        run(args.policy_from, args.label, args.seeds, args.epochs, args.jobs, args.record, work, args.checkpoint,
            args.device)


if __name__ == "__main__":
    main()
