"""A slim network as ONNX, checked against torch with onnxruntime.

The export has a dynamic batch dimension; the check feeds a seeded random batch to both and
refuses the file when any output differs by more than `atol`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from prune_gym.errors import PruneGymError

CHECK_BATCH = 8
ATOL = 1e-4  # logits of a float32 network, computed by two runtimes


def export_onnx(model: nn.Module, input_shape: tuple[int, ...], path: str | Path, atol: float = ATOL) -> dict[str, Any]:
    """Write `model` to `path` as ONNX and check it with onnxruntime on CPU; returns what the check measured."""
    try:
        import onnxruntime
        import onnxscript  # noqa: F401  (torch's ONNX exporter needs it)
    except ImportError as exc:
        raise PruneGymError(f"--onnx needs onnx, onnxscript and onnxruntime ({exc.name} is missing): "
                            f"pip install 'prune-gym[onnx]'") from None
    path = Path(path)
    model = model.cpu().eval()
    x = torch.randn((CHECK_BATCH, *input_shape), generator=torch.Generator().manual_seed(0))
    batch = torch.export.Dim("batch", min=1)
    program = torch.onnx.export(model, (x,), dynamo=True, dynamic_shapes=({0: batch},), verbose=False)
    tmp = path.with_name(path.name + ".tmp")
    program.save(str(tmp))
    session = onnxruntime.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    with torch.no_grad():
        expected = model(x).numpy()
    difference = float(np.abs(got - expected).max())
    if difference > atol:
        tmp.unlink()
        raise PruneGymError(f"the ONNX model's outputs differ from torch's by {difference:.2e} (> {atol:.0e})")
    tmp.replace(path)
    return {"file": path.name, "max_abs_difference": difference, "atol": atol, "check_batch": CHECK_BATCH,
            "onnxruntime": onnxruntime.__version__}
