"""Exponential moving average of the weights (the reference's ``ModelEma``), buffers included.

After every optimiser step: for every floating-point entry of the state dict (parameters *and*
buffers such as BatchNorm running statistics) ``ema = decay * ema + (1 - decay) * model``; integer
buffers (``num_batches_tracked``) are copied. No warm-up of the decay (as the reference).
"""

from __future__ import annotations

import copy

import torch
import torch.nn as nn

from ..checks import Range

#: EMA decay: in [0, 1) (0 copies the model at every update; 1 would never move).
EMA_DECAY_RANGE = Range(0.0, 1.0, hi_open=True)


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside a DistributedDataParallel / DataParallel wrapper (or the model itself)."""
    inner = getattr(model, "module", None)
    return inner if isinstance(inner, nn.Module) else model


class ModelEMA:
    """EMA copy of a model.

    Args:
        model: the model being trained (a DDP wrapper is unwrapped).
        decay: in [0, 1); 0 copies the model at every update.

    Attributes:
        module: the EMA model (eval mode, no gradients), same device as ``model``.

    Raises:
        ValueError: decay outside [0, 1).
    """

    def __init__(self, model: nn.Module, decay: float):
        self.decay = float(EMA_DECAY_RANGE.check("ema decay", decay))
        self.module = copy.deepcopy(unwrap(model)).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """ema <- decay * ema + (1 - decay) * model, for every float parameter and buffer.

        One fused ``torch._foreach_lerp_`` over all float tensors (hundreds of tensors for a
        ResNet-101: a Python loop would launch one kernel each).

        Raises:
            KeyError: ``model`` does not have the EMA model's state-dict keys.
        """
        src = unwrap(model).state_dict()
        ema_f, src_f = [], []
        for name, e in self.module.state_dict().items():
            m = src[name].detach()
            if e.dtype.is_floating_point:
                ema_f.append(e)
                src_f.append(m if m.dtype == e.dtype else m.to(e.dtype))
            else:
                e.copy_(m)
        if ema_f:
            torch._foreach_lerp_(ema_f, src_f, 1.0 - self.decay)  # e + (1-d)(m - e) = d e + (1-d) m

    def state_dict(self) -> dict:
        return {"decay": self.decay, "module": self.module.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        """Restore from :meth:`state_dict` (strict keys). Raises ValueError on a decay mismatch."""
        if float(state["decay"]) != self.decay:
            raise ValueError(f"EMA decay in checkpoint {state['decay']} != configured {self.decay}")
        self.module.load_state_dict(state["module"], strict=True)
