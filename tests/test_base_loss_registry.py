"""Adding a base loss touches its own module and its registry entry only.

A toy base loss is defined and registered here, in the test, with ``register_base_loss``; nothing
else changes, and the run schema (``base_loss`` choices, ``base_loss_args``), ``--help``,
``build_criterion`` and ``fit`` all take it, with one of its own hyper-parameters set from the
run's configuration. The registry is restored afterwards.
"""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from clml_lib.checks import Range
from clml_lib.losses import (
    BASE_LOSSES,
    BCELoss,
    MultiLabelLoss,
    base_loss_defaults,
    make_base_loss,
    register_base_loss,
)
from clml_lib.train import TrainConfig, fit, load_config
from clml_lib.train.config import help_text
from clml_lib.train.engine import build_criterion

pytestmark = pytest.mark.usefixtures("one_torch_thread")

#: Range of the toy loss's own hyper-parameter (declared beside the loss, as the real ones are).
POS_WEIGHT_RANGE = Range(0.0, None, lo_open=True)


@pytest.fixture
def toy_loss():
    """Register ``Toy``: BCE whose positive terms are weighted by ``pos_weight`` (its own
    hyper-parameter); the registry is put back as it was afterwards."""
    before = dict(BASE_LOSSES)

    @register_base_loss("Toy")
    class ToyLoss(MultiLabelLoss):
        def __init__(self, pos_weight: float = 1.0, reduction: str = "sum",
                     unknown: str = "negative") -> None:
            super().__init__(reduction, unknown)
            self.pos_weight = POS_WEIGHT_RANGE.check("pos_weight", pos_weight)

        def elementwise(self, s, y, epoch):
            return -(self.pos_weight * y * F.logsigmoid(s) + (1 - y) * F.logsigmoid(-s))

    try:
        yield ToyLoss
    finally:
        BASE_LOSSES.clear()
        BASE_LOSSES.update(before)


def _toy_reference(s: torch.Tensor, y: torch.Tensor, pos_weight: float) -> float:
    """The toy loss summed, in float64, from its formula."""
    s, y = s.double(), y.double()
    p = 1 / (1 + torch.exp(-s))
    return float(-(pos_weight * y * torch.log(p) + (1 - y) * torch.log(1 - p)).sum())


def test_a_registered_toy_loss_runs_from_a_config_with_its_own_hyper_parameter(toy_loss,
                                                                               tmp_path):
    assert base_loss_defaults("Toy") == {"pos_weight": 1.0}
    assert "Toy" in help_text() and "Toy: pos_weight" in help_text()
    cfg = load_config(overrides=["base_loss=Toy", "base_loss_args={pos_weight: 2.5}",
                                 "reduction=sum", f"out_dir={tmp_path / 'run'}", "epochs=1",
                                 "num_train_images=64", "batch_size=32", "max_train_batches=2",
                                 "max_eval_batches=1", "verbose=false"])
    assert cfg.base_loss_args == {"pos_weight": 2.5}

    base = build_criterion(cfg).base_loss
    assert isinstance(base, toy_loss) and base.pos_weight == 2.5
    g = torch.Generator().manual_seed(0)
    s = torch.randn(6, 4, generator=g, dtype=torch.float64)
    y = (torch.rand(6, 4, generator=g) < 0.4).double()
    assert float(base(s, y)) == pytest.approx(_toy_reference(s, y, 2.5), rel=1e-12)
    assert float(base(s, y)) != pytest.approx(_toy_reference(s, y, 1.0), rel=1e-3)

    summary = fit(cfg)
    assert summary["finished"]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["config"]["base_loss"] == "Toy"
    assert metrics["config"]["base_loss_args"] == {"pos_weight": 2.5}
    assert all(torch.isfinite(torch.tensor(e["train"]["base"])) for e in metrics["epochs"])


def test_the_toy_loss_hyper_parameters_are_validated_from_the_config(toy_loss):
    with pytest.raises(ValueError, match=r"base_loss_args of base loss 'Toy': pos_weight must be "
                                         r"in \(0, inf\), got 0.0"):
        TrainConfig(base_loss="Toy", base_loss_args={"pos_weight": 0.0})
    with pytest.raises(ValueError, match=r"base_loss_args must name hyper-parameters of base "
                                         r"loss 'Toy' \(with their defaults: pos_weight=1.0\), "
                                         r"got 'gamma'"):
        TrainConfig(base_loss="Toy", base_loss_args={"gamma": 2.0})
    assert make_base_loss("toy", pos_weight=3.0).pos_weight == 3.0  # names: any case


def test_without_its_registry_entry_the_loss_is_not_a_choice():
    assert "Toy" not in BASE_LOSSES
    with pytest.raises(ValueError, match="base_loss must be one of"):
        TrainConfig(base_loss="Toy")


def test_register_base_loss_refuses_a_bad_entry():
    with pytest.raises(ValueError, match="'bce' is already registered"):
        register_base_loss("bce")
    with pytest.raises(ValueError, match="not a MultiLabelLoss subclass"):
        register_base_loss("Plain")(torch.nn.Module)

    class NoDefault(BCELoss):
        def __init__(self, k: float, reduction: str = "sum", unknown: str = "negative") -> None:
            super().__init__(reduction=reduction, unknown=unknown)

    with pytest.raises(ValueError, match=r"give every hyper-parameter a default \(none for: "
                                         r"\['k'\]\)"):
        register_base_loss("NoDefault")(NoDefault)
    assert "NoDefault" not in BASE_LOSSES and "Plain" not in BASE_LOSSES
