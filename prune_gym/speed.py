"""Measured speed of a network: latency at batch 1 and throughput at a larger batch.

MACs say how much a pruned network computes; what a user deploys for is time. Each figure
is the median of `torch.utils.benchmark`'s blocked auto-range on the given device, with the
threads torch uses there, so the slim and the original model are measured alike, side by
side, on the machine that exported them. A shared machine's speed drifts by 10-20% over
minutes, so a ratio of two models is best measured in alternation (`paired_latency`).
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from prune_gym.macs import count_macs, count_params

THROUGHPUT_BATCH = 64
MIN_RUN_SECONDS = 0.5  # per measurement; blocked_autorange repeats the call until it has run this long


@dataclass(frozen=True)
class Speed:
    """One model's measured speed, and its size."""

    latency_ms: float  # one image (batch 1), median
    throughput: float  # images per second at `batch`
    batch: int
    params: int
    macs: int


def median_ms(module: nn.Module, x: torch.Tensor, min_run_seconds: float = MIN_RUN_SECONDS) -> float:
    """Median milliseconds of `module(x)` without gradients, with torch's threads."""
    from torch.utils import benchmark  # imported here: it warns about CUDA on import, in every command

    timer = benchmark.Timer(stmt="with torch.no_grad(): module(x)", globals={"module": module, "x": x, "torch": torch},
                            num_threads=torch.get_num_threads())
    return 1000 * timer.blocked_autorange(min_run_time=min_run_seconds).median


def measure_speed(model: nn.Module, input_shape: tuple[int, ...], device: torch.device | str = "cpu",
                  batch: int = THROUGHPUT_BATCH, min_run_seconds: float = MIN_RUN_SECONDS) -> Speed:
    """Time `model` on random inputs of `input_shape` (C, H, W) on `device`, in eval mode, without
    gradients; the model is handed back on its device and in its mode."""
    device = torch.device(device)
    was_training = model.training
    home = next(model.parameters()).device
    model = model.to(device).eval()
    generator = torch.Generator().manual_seed(0)

    def inputs(n: int) -> torch.Tensor:
        return torch.randn((n, *input_shape), generator=generator).to(device)

    latency = median_ms(model, inputs(1), min_run_seconds)
    throughput = 1000 * batch / median_ms(model, inputs(batch), min_run_seconds)
    speed = Speed(latency, throughput, batch, count_params(model), count_macs(model, tuple(input_shape)))
    model.to(home).train(was_training)
    return speed


@dataclass(frozen=True)
class PairedLatency:
    """Two models' batch-1 latencies, measured in alternation."""

    ratio: float  # median over the pairs of first / second
    first_ms: list[float]
    second_ms: list[float]


def paired_latency(first: nn.Module, second: nn.Module, input_shape: tuple[int, ...],
                   device: torch.device | str = "cpu", pairs: int = 5,
                   min_run_seconds: float = MIN_RUN_SECONDS) -> PairedLatency:
    """`first`'s batch-1 latency over `second`'s, each pair measured back to back so that the machine's
    drift between pairs cancels in the ratio (both models are put in eval mode on `device`)."""
    device = torch.device(device)
    x = torch.randn((1, *input_shape), generator=torch.Generator().manual_seed(0)).to(device)
    first, second = first.to(device).eval(), second.to(device).eval()
    times = [(median_ms(first, x, min_run_seconds), median_ms(second, x, min_run_seconds)) for _ in range(pairs)]
    return PairedLatency(statistics.median(a / b for a, b in times), [a for a, _ in times], [b for _, b in times])


def speed_report(slim: nn.Module, original: nn.Module, input_shape: tuple[int, ...],
                 device: torch.device | str = "cpu") -> dict[str, Any]:
    """The slim and the original network measured alike, and the speed-ups, as a JSON-ready dict."""
    fast, base = (measure_speed(m, input_shape, device) for m in (slim, original))
    return {"device": str(torch.device(device)), "threads": torch.get_num_threads(),
            "slim": asdict(fast), "original": asdict(base),
            "latency_speed_up": base.latency_ms / fast.latency_ms,
            "throughput_speed_up": fast.throughput / base.throughput}
