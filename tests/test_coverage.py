"""benchmarks/coverage.py on real torchvision classifiers: what it records and the table it prints."""

from __future__ import annotations

import json

from prune_gym.benchmarks.coverage import main, measure, reason_kind, table


def test_a_model_that_prunes_and_one_over_the_memory_cap_are_recorded(tmp_path, monkeypatch):
    row = measure("squeezenet1_1", max_params=300)  # fire modules concatenate two expand convs: one unit
    assert row["status"] == "builds" and row["input"] == 64 and row["units"] == 17
    assert row["unit_macs_share"] == 1.0 and 0 < row["min_ratio"] < 0.3
    for ratio in ("p0.5", "p0.3"):  # a MACs ratio, under budget, and the export gave the pruned logits
        assert float(row[ratio]) <= float(ratio[1:]) and not any(w in row[ratio] for w in ("OVER", "differs"))
    assert row["frozen_reasons"] == ["network output"]
    assert row["tp_status"] == "builds" and row["tp_groups"] > 0
    assert measure("vgg11", max_params=100)["status"] == "skipped: over 100M parameters (memory)"

    path = tmp_path / "coverage.jsonl"
    path.write_text(json.dumps(row) + "\n")
    monkeypatch.setattr("sys.argv", ["coverage.py", "--out", str(tmp_path), "--report"])
    main()
    assert "1 models: 1 build, 1 of them reach p = 0.3" in table([row])


def test_freeze_reasons_lose_their_node_names():
    assert reason_kind("cat at node cat_3") == "cat"
    assert reason_kind("parts of a tensor (chunk at node chunk_1)") == "chunk"
    assert reason_kind("grouped conv (3 groups) at layer1.conv2") == "grouped conv (3 groups)"
