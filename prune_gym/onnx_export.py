"""A slim network as ONNX, checked against torch with onnxruntime.

The export has a dynamic batch dimension; the check feeds seeded random batches of 1 and 8
images to both and refuses the file when any output differs by more than `atol`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from prune_gym.errors import PruneGymError

CHECK_BATCHES = (1, 8)  # both sides of a batch dimension the exporter might have fixed
ATOL = 1e-4  # logits of a float32 network, computed by two runtimes


def require_onnx() -> None:
    """Refuse at once, not after a search, when the packages an ONNX export needs are missing."""
    try:
        import onnxruntime  # noqa: F401
        import onnxscript  # noqa: F401  (torch's ONNX exporter needs it)
    except ImportError as exc:
        raise PruneGymError(f"--onnx needs onnx, onnxscript and onnxruntime ({exc.name} is missing): "
                            f"pip install 'prune-gym[onnx]'") from None


def export_onnx(model: nn.Module, input_shape: tuple[int, ...], path: str | Path, atol: float = ATOL) -> dict[str, Any]:
    """Write `model` to `path` as ONNX and check it with onnxruntime on CPU; returns what the check measured."""
    require_onnx()
    import onnxruntime

    path = Path(path)
    model = model.cpu().eval()
    generator = torch.Generator().manual_seed(0)
    inputs = [torch.randn((n, *input_shape), generator=generator) for n in CHECK_BATCHES]
    batch = torch.export.Dim("batch", min=1)
    program = torch.onnx.export(model, (inputs[-1],), dynamo=True, dynamic_shapes=({0: batch},), verbose=False)
    tmp = path.with_name(path.name + ".tmp")
    program.save(str(tmp))
    session = onnxruntime.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
    difference = 0.0
    for x in inputs:
        got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
        with torch.no_grad():
            difference = max(difference, float(np.abs(got - model(x).numpy()).max()))
    if not difference <= atol:  # NaN fails too
        tmp.unlink()
        raise PruneGymError(f"the ONNX model's outputs differ from torch's by {difference:.2e} (> {atol:.0e})")
    tmp.replace(path)
    return {"file": path.name, "max_abs_difference": difference, "atol": atol, "check_batches": list(CHECK_BATCHES),
            "onnxruntime": onnxruntime.__version__}
