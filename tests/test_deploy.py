"""From a policy to a deployable model: measured speed beside the original, and an ONNX file that
onnxruntime runs to the same outputs as torch."""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import onnxruntime
import torch

from prune_gym.export import load_slim
from prune_gym.models import build_model
from prune_gym.speed import measure_speed, paired_latency


def test_export_records_measured_speed_and_a_checked_onnx_model(cli, tiny_checkpoint, fashion_root, tmp_path):
    result = cli("export", "--ratio", "0.3", "--out", str(tmp_path), "--checkpoint", str(tiny_checkpoint),
                 "--data-root", str(fashion_root), "--device", "cpu", "--onnx")
    assert result.returncode == 0, result.stderr
    assert "measured on cpu" in result.stdout and "model.onnx: onnxruntime" in result.stdout
    spec = json.loads((tmp_path / "spec.json").read_text())
    slim, original = spec["speed"]["slim"], spec["speed"]["original"]
    assert slim["macs"] == spec["macs"] and slim["macs"] <= 0.3 * original["macs"] < original["macs"]
    assert slim["params"] < original["params"]
    assert all(s["latency_ms"] > 0 and s["throughput"] > 0 for s in (slim, original))
    assert spec["speed"]["latency_speed_up"] == original["latency_ms"] / slim["latency_ms"]

    session = onnxruntime.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    x = torch.randn(3, 1, 28, 28)  # another batch size than the check's: the batch is dynamic
    with torch.no_grad():
        expected = load_slim(tmp_path)(x).numpy()
    assert np.abs(session.run(None, {session.get_inputs()[0].name: x.numpy()})[0] - expected).max() < 1e-4
    assert spec["onnx"]["max_abs_difference"] < spec["onnx"]["atol"]


def test_measured_speed_counts_what_the_model_computes():
    model = build_model("resnet20", 1, 10, 28)
    speed = measure_speed(model, (1, 28, 28), batch=4, min_run_seconds=0.05)
    assert speed.batch == 4 and speed.params == sum(p.numel() for p in model.parameters())
    assert round(speed.macs / 1e6, 2) == 30.82  # on 28 x 28 images (`prune-gym models` lists 40.55 M at 32 x 32)
    assert model.training  # measured in eval mode, handed back as it came


def test_paired_latency_measures_two_models_in_alternation():
    big = build_model("resnet20", 1, 10, 28)
    small = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.Flatten(), torch.nn.LazyLinear(10))
    small(torch.zeros(1, 1, 28, 28))  # materialise the lazy layer
    paired = paired_latency(small, big, (1, 28, 28), pairs=3, min_run_seconds=0.02)
    assert len(paired.first_ms) == len(paired.second_ms) == 3
    assert 0 < paired.ratio < 1  # one small conv against twenty
    assert min(paired.first_ms) / max(paired.second_ms) <= paired.ratio <= max(paired.first_ms) / min(paired.second_ms)


def test_a_searched_policy_and_torch_prunings_uniform_pruning_are_fine_tuned_and_timed_alike(tiny_checkpoint,
                                                                                          fashion_root):
    import gymnasium as gym
    import pytest

    import prune_gym
    from prune_gym.benchmarks.deployable import compare
    from prune_gym.datasets import load_splits
    from prune_gym.errors import PruneGymError
    from prune_gym.finetune import FinetuneRecipe

    env = gym.make(prune_gym.ENV_ID, model="resnet20", dataset="fashion-mnist", target_ratio=0.3, device="cpu",
                   checkpoint=tiny_checkpoint, data_root=fashion_root, calibration_images=100)
    splits = load_splits("fashion-mnist", fashion_root, 0, 100, 200)
    original, searched, torch_pruning = compare(env, [0.4] * 9, FinetuneRecipe(epochs=1, batch_size=128), splits,
                                                candidates=("searched", "torch-pruning"), min_run_seconds=0.02)
    assert original.macs_ratio == 1.0 and torch_pruning.macs_ratio <= searched.macs_ratio <= 0.3
    assert all(row.test_after > row.test_before for row in (searched, torch_pruning))  # it pays where pruning lost most
    # Speed alone, of the uniform policy only: nothing is fine-tuned.
    again, uniform = compare(env, [0.4] * 9, None, splits, candidates=("uniform",), min_run_seconds=0.02)
    assert uniform.name == "uniform policy" and math.isnan(uniform.test_after)
    assert uniform.macs_ratio <= 0.3 and uniform.test_before > torch_pruning.test_before  # refit, not magnitude alone
    assert again.test_before == original.test_before
    assert all(row.latency_ms > 0 and row.speed_up > 0 and row.throughput > 0
               for row in (original, searched, uniform, torch_pruning))
    with pytest.raises(PruneGymError, match="mis-groups this architecture"):  # ResNet-20's zero-pad shortcut
        compare(env, [0.4] * 9, FinetuneRecipe(epochs=1), splits, tp_layers="all")


def test_a_policy_as_torch_prunings_pruning_ratio_dict_gives_torch_pruning_the_same_macs(make_env, tmp_path):
    import torch_pruning as tp

    from prune_gym.alternatives import pruning_ratio_dict
    from prune_gym.export import export_slim
    from prune_gym.macs import count_macs
    from prune_gym.policies import play

    env = make_env(target_ratio=0.4)
    info = play(env, np.random.default_rng(3).uniform(0.2, 0.9, 9))
    export_slim(env, tmp_path, info)
    model = copy.deepcopy(env.unwrapped.workload.model)  # the unpruned network, as a Torch-Pruning user holds it
    ratios = pruning_ratio_dict(tmp_path, model)
    assert 0 < len(ratios) <= 9 and all(0 <= r < 1 for r in ratios.values())
    example = torch.zeros(1, *env.unwrapped.workload.input_shape)
    tp.pruner.BasePruner(model, example, importance=tp.importance.MagnitudeImportance(p=2), pruning_ratio=0.0,
                         pruning_ratio_dict=ratios).step()
    assert count_macs(model, env.unwrapped.workload.input_shape) == info["macs"]


def test_the_deployable_league_fine_tunes_each_slim_model_per_seed_and_resumes(make_env, tiny_checkpoint,
                                                                              fashion_root, tmp_path):
    import pytest

    from prune_gym.alternatives import torch_pruning_at_macs
    from prune_gym.benchmarks.deployable_league import CANDIDATES, read_record, record_speed, report, run
    from prune_gym.errors import PruneGymError
    from prune_gym.export import export_slim, read_spec
    from prune_gym.policies import play

    env = make_env(target_ratio=0.4)
    export_slim(env, tmp_path / "search", play(env, np.random.default_rng(0).uniform(0.2, 0.9, 9)))
    record, work = tmp_path / "league.jsonl", tmp_path / "work"
    league = dict(label="a test search", seeds=[0, 1], epochs=1, jobs=1, record=record, work=work,
                  checkpoint=str(tiny_checkpoint), data_root=str(fashion_root))
    run(tmp_path / "search", **league)
    rows = read_record(record)
    tuned = [r for r in rows if "test_after" in r]
    aliases = {r["candidate"]: r["same_as"] for r in rows if "same_as" in r}
    assert {r["candidate"] for r in tuned} | set(aliases) == set(CANDIDATES)
    assert sorted((r["candidate"], r["seed"]) for r in tuned) == sorted(
        (c, s) for c in CANDIDATES if c not in aliases for s in (0, 1))
    searched_macs = read_spec(tmp_path / "search")["macs"]
    assert all(r["macs"] <= searched_macs and 0 <= r["test_before"] <= 1 and 0 <= r["test_after"] <= 1
               and r["ratio"] == 0.4 and r["policy_from"] == "a test search" for r in tuned)
    assert next(r["macs"] for r in tuned if r["candidate"] == "searched") == searched_macs
    tp = [r for r in tuned if r["candidate"] == "tp-uniform"]
    assert tp[0]["test_before"] == tp[1]["test_before"]  # one slim model, two fine-tunes
    assert aliases.get("tp-global") != "tp-uniform"  # Torch-Pruning's global ranking: unequal shares of the layers
    with pytest.raises(PruneGymError, match="unknown Torch-Pruning method 'magnitude'"):
        torch_pruning_at_macs(env.unwrapped.workload.model, (1, 28, 28), 1, "units", set(), "magnitude")

    saved = {p.name: p.stat().st_mtime_ns for p in work.glob("*.pt")}
    run(tmp_path / "search", **league)  # a rerun, as after a kill: nothing left to fine-tune
    assert read_record(record) == rows
    assert {p.name: p.stat().st_mtime_ns for p in work.glob("*.pt")} == saved  # read back, not made again
    with record.open("a") as f:
        f.write('{"model": "resnet20", "candidate": "searched", "se')  # a line a kill cut short
    assert read_record(record) == rows
    record_speed(tmp_path / "search", record, work, str(tiny_checkpoint), str(fashion_root), min_run_seconds=0.01)
    speeds = {r["candidate"]: r["speed_up"] for r in read_record(record) if "speed_up" in r}  # the first after the cut
    assert set(speeds) == {c for c in CANDIDATES if c not in aliases} and min(speeds.values()) > 0
    head_to_head = {r["over"]: r["speed_ratio"] for r in read_record(record) if "over" in r}
    assert set(head_to_head) == {c for c in speeds if c.startswith("tp-")} and min(head_to_head.values()) > 0
    table = report(read_record(record))
    assert "| resnet20 | 0.4 | searched (a test search) |" in table and "over tp-" in table
    assert f"| {speeds['searched']:.2f}x |" in table.splitlines()[2]
    best = table.split(", the best Torch-Pruning model")[0].split(" over ")[-1]
    assert f"at {head_to_head[best]:.2f}x its batch-1 speed (median of 1 head-to-head measurement," in table


def test_the_league_report_names_a_torch_pruning_method_that_cannot_reach_the_budget():
    from prune_gym.benchmarks.deployable_league import report

    key = {"model": "resnet56", "dataset": "fashion-mnist", "ratio": 0.1, "residual_streams": True}
    tuned = [{**key, "candidate": name, "policy_from": "a search", "seed": seed, "epochs": 3, "test_before": 0.5,
              "test_after": after + seed / 1000, "macs": 9e6}
             for name, after in (("searched", 0.89), ("tp-uniform", 0.88)) for seed in (0, 1)]
    marks = [{**key, "candidate": "tp-global", "unreachable": True},
             {**key, "candidate": "searched", "over": "tp-uniform", "speed_ratio": 1.2},
             {**key, "candidate": "searched", "over": "tp-uniform", "speed_ratio": 1.1}]
    table = report(tuned + marks)
    assert "| resnet56 | 0.1 | tp-global | - | 0 | - | cannot prune to the searched model's MACs | - |" in table
    assert "searched +1.00 pp [+0.90, +1.10] over tp-uniform, the best Torch-Pruning model, at 1.15x its batch-1 " \
           "speed (median of 2 head-to-head measurements, 1.10-1.20x)" in table
