"""Base losses against float64 formulas, CLMLLoss composition, ablations and GradScaler."""

import pytest
import torch
import torch.nn.functional as F

from clml_lib.losses import (
    AsymmetricLoss,
    BCELoss,
    CLMLLoss,
    FocalLoss,
    HillLoss,
    SPLCLoss,
    equivalent_lambda,
    low_rank_loss,
    make_base_loss,
    official_style_low_rank,
)


def batch(N=12, C=5, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    s = (3 * torch.randn(N, C, generator=g)).to(dtype)
    y = (torch.rand(N, C, generator=g) < 0.4).to(dtype)
    return s, y


def test_bce_matches_torch_float64():
    s, y = batch()
    ref = F.binary_cross_entropy_with_logits(s, y, reduction="sum")
    torch.testing.assert_close(BCELoss()(s, y), ref, rtol=1e-10, atol=0)
    torch.testing.assert_close(BCELoss(reduction="mean")(s, y), ref / y.numel(), rtol=1e-10, atol=0)


def test_focal_and_asl_formulas():
    s, y = batch(seed=1)
    p = torch.sigmoid(s)
    focal = -(y * (1 - p) ** 2 * torch.log(p) + (1 - y) * p**2 * torch.log(1 - p)).sum()
    torch.testing.assert_close(FocalLoss()(s, y), focal, rtol=1e-10, atol=0)
    pm = (p - 0.05).clamp(min=0)
    asl = -(y * torch.log(p) + (1 - y) * pm**4 * torch.log((1 - pm).clamp(min=1e-8))).sum()
    torch.testing.assert_close(AsymmetricLoss()(s, y), asl, rtol=1e-10, atol=0)
    torch.testing.assert_close(AsymmetricLoss(0, 0, 0)(s, y), BCELoss()(s, y), rtol=1e-12, atol=0)


def test_focal_weight_carries_no_gradient():
    s, y = batch(seed=2)
    s = s.clone().requires_grad_()
    (g,) = torch.autograd.grad(FocalLoss()(s, y), s)
    p = torch.sigmoid(s.detach())
    w = torch.where(y == 1, (1 - p) ** 2, p**2)
    expected = w * (p - y)  # d/ds of -w log p_t with w frozen
    torch.testing.assert_close(g, expected, rtol=1e-10, atol=1e-12)


def test_hill_formula():
    s, y = batch(seed=3)
    pm, p = torch.sigmoid(s - 1), torch.sigmoid(s)
    hill = (y * -((1 - pm) ** 2) * torch.log(pm) + (1 - y) * (1.5 - p) * p**2).sum()
    torch.testing.assert_close(HillLoss()(s, y), hill, rtol=1e-10, atol=0)


def test_splc_mines_only_from_start_epoch():
    s = torch.tensor([[3.0, 3.0, -3.0]], dtype=torch.float64)
    y = torch.tensor([[1.0, 0.0, 0.0]], dtype=torch.float64)
    loss = SPLCLoss(tau=0.7)

    def focal_bce(s, y):
        p = torch.sigmoid(s)
        pt = y * (1 - p) + (1 - y) * p
        return (pt**2 * -(y * F.logsigmoid(s) + (1 - y) * F.logsigmoid(-s))).sum()

    shifted = torch.tensor([[2.0, 3.0, -3.0]], dtype=torch.float64)
    torch.testing.assert_close(loss(s, y, epoch=0), focal_bce(shifted, y))
    torch.testing.assert_close(
        loss(s, y, epoch=1),
        focal_bce(shifted, torch.tensor([[1.0, 1.0, 0.0]], dtype=torch.float64)),
    )


def test_unknown_policy_negative_vs_ignore():
    s, y = batch(seed=4)
    t = y.clone()
    t[0, :] = -1
    torch.testing.assert_close(BCELoss()(s, t), BCELoss()(s, (t == 1).double()))
    ignore = BCELoss(unknown="ignore")
    torch.testing.assert_close(ignore(s, t), BCELoss()(s[1:], y[1:]))
    torch.testing.assert_close(
        BCELoss(reduction="mean", unknown="ignore")(s, t), BCELoss(reduction="mean")(s[1:], y[1:])
    )


def test_base_loss_bad_inputs():
    with pytest.raises(ValueError, match="unknown base loss 'XYZ'"):
        make_base_loss("XYZ")
    with pytest.raises(ValueError, match="reduction must be"):
        BCELoss(reduction="avg")
    with pytest.raises(ValueError, match="shape of logits"):
        BCELoss()(torch.zeros(2, 3), torch.zeros(3, 2))
    with pytest.raises(ValueError, match="NaN"):
        BCELoss()(torch.tensor([[float("nan")]]), torch.zeros(1, 1))
    with pytest.raises(ValueError, match=r"\{-1, 0, 1\}"):
        BCELoss()(torch.zeros(1, 2), torch.tensor([[0.5, 1.0]]))


def test_half_precision_base_losses_are_finite():
    s, y = batch(seed=5, dtype=torch.float32)
    for name in ("BCE", "Focal", "ASL", "Hill", "SPLC"):
        lin = torch.nn.Linear(5, 5)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = make_base_loss(name)(lin(s * 10), y, 1)
        out.backward()
        assert (
            out.dtype == torch.float32
            and torch.isfinite(out)
            and torch.isfinite(lin.weight.grad).all()
        ), name


def test_equivalent_lambda_keeps_the_balance():
    s, y = batch(N=8, C=5, seed=6)
    z = torch.randn(8, 16, dtype=torch.float64)
    total_sum = CLMLLoss("BCE", lambda_=2.0, use_correction=False)(s, z, y)
    lam = equivalent_lambda(2.0, 8, 5)
    total_mean = CLMLLoss("BCE", lambda_=lam, reduction="mean", use_correction=False)(s, z, y)
    torch.testing.assert_close(total_mean, total_sum / 40)


def test_clml_loss_composition_and_parts():
    s, y = batch(N=16, C=4, seed=7)
    z = torch.randn(16, 32, dtype=torch.float64)
    crit = CLMLLoss("BCE", lambda_=0.5, tau=0.8, pairwise_weight=0.25)
    parts = crit.forward_parts(s, z, y, epoch=1)
    corrected = ((y == 1) | (torch.sigmoid(s) > 0.8)).double()
    torch.testing.assert_close(parts.corrected, corrected)
    torch.testing.assert_close(parts.base, BCELoss()(s, y))  # base sees observed labels
    torch.testing.assert_close(parts.low_rank, 0.5 * low_rank_loss(z, corrected))
    torch.testing.assert_close(parts.total, parts.base + parts.low_rank + parts.pairwise)
    assert parts.mined.sum() == (corrected - y).sum()
    # 2022 placement: lambda also on the global term
    p22 = CLMLLoss("BCE", lambda_=0.5, tau=0.8, lambda_placement="2022").forward_parts(s, z, y, 1)
    torch.testing.assert_close(p22.low_rank, 0.5 * low_rank_loss(z, corrected, global_weight=0.5))


def test_ablation_columns():
    s, y = batch(N=16, C=4, seed=8)
    z = torch.randn(16, 32, dtype=torch.float64)
    base = CLMLLoss.ablation("base").forward_parts(s, z, y, 1)
    assert base.low_rank.item() == 0 and base.mined.sum() == 0
    lr = CLMLLoss.ablation("low_rank").forward_parts(s, z, y, 1)
    torch.testing.assert_close(lr.low_rank, low_rank_loss(z, y))  # observed labels
    corr = CLMLLoss.ablation("correction", tau=0.8).forward_parts(s, z, y, 1)
    assert corr.low_rank.item() == 0
    torch.testing.assert_close(
        corr.base, BCELoss()(s, corr.corrected)
    )  # correction feeds the base loss
    full = CLMLLoss.ablation("clml", tau=0.8).forward_parts(s, z, y, 1)
    torch.testing.assert_close(full.low_rank, low_rank_loss(z, full.corrected))
    with pytest.raises(ValueError, match="unknown ablation"):
        CLMLLoss.ablation("nope")
    with pytest.raises(ValueError, match="fixes"):
        CLMLLoss.ablation("clml", use_clml=False)


def test_clml_constructor_and_forward_errors():
    with pytest.raises(ValueError, match="lambda_"):
        CLMLLoss(lambda_=-1)
    with pytest.raises(ValueError, match="tau"):
        CLMLLoss(tau=2)
    with pytest.raises(ValueError, match="correct_base_targets"):
        CLMLLoss(use_correction=False, correct_base_targets=True)
    with pytest.raises(ValueError, match="N = 4 rows"):
        CLMLLoss()(torch.zeros(4, 3), torch.zeros(5, 8), torch.zeros(4, 3))
    with pytest.raises(ValueError, match="NaN"):
        CLMLLoss()(torch.zeros(2, 3), torch.full((2, 8), float("nan")), torch.zeros(2, 3))


class TinyNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.body = torch.nn.Linear(10, 24)
        self.fc = torch.nn.Linear(24, 6)

    def forward(self, x):
        z = torch.relu(self.body(x))
        return self.fc(z), z


def _grad_after(criterion_fn, use_scaler: bool):
    net = TinyNet()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(16, 10, generator=g)
    y = (torch.rand(16, 6, generator=g) < 0.4).float()
    logits, z = net(x)
    loss = criterion_fn(z, y)
    if use_scaler:
        scaler = torch.amp.GradScaler("cpu", init_scale=2.0**16)
        opt = torch.optim.SGD(net.parameters(), lr=0.0)
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
    else:
        loss.backward()
    return net.body.weight.grad.clone()


def test_grad_scaler_leaves_clml_gradient_unchanged():
    """Our CLML term: the parameter gradient after scale/backward/unscale equals the plain one."""
    crit = lambda z, y: low_rank_loss(z, y)  # noqa: E731
    plain = _grad_after(crit, use_scaler=False)
    scaled = _grad_after(crit, use_scaler=True)
    assert plain.norm() > 0
    torch.testing.assert_close(scaled, plain, rtol=1e-5, atol=1e-7)
    full = lambda z, y: CLMLLoss("BCE", use_correction=False)(z[:, :6], z, y)  # noqa: E731
    torch.testing.assert_close(
        _grad_after(full, True), _grad_after(full, False), rtol=1e-5, atol=1e-6
    )


def test_official_style_gradient_is_divided_by_the_loss_scale():
    """The defect of docs/method.md §5.5, measured: the official-style backward loses the scale."""
    crit = lambda z, y: official_style_low_rank(z, y)  # noqa: E731
    plain = _grad_after(crit, use_scaler=False)
    scaled = _grad_after(crit, use_scaler=True)
    torch.testing.assert_close(
        plain, _grad_after(lambda z, y: low_rank_loss(z, y), False), rtol=1e-5, atol=1e-7
    )
    torch.testing.assert_close(scaled, plain / 2.0**16, rtol=1e-5, atol=1e-12)


def test_splc_reports_its_own_corrections_and_the_loss_uses_exactly_them():
    from clml_lib.losses import CLMLLoss, SPLCLoss

    torch.manual_seed(0)
    logits = torch.randn(16, 5, dtype=torch.float64) * 3  # (N, C)
    labels = (torch.rand(16, 5) < 0.3).double()
    splc = SPLCLoss(tau=0.7, start_epoch=1)
    assert not splc.own_corrections(logits, labels, epoch=0).any()  # before start_epoch
    mask = splc.own_corrections(logits, labels, epoch=1)
    assert torch.equal(mask, (labels == 0) & (torch.sigmoid(logits) > 0.7)) and mask.any()
    # the loss at epoch 1 equals the epoch-0 loss (no correction) on the corrected targets,
    # except that SPLC's margin applies to observed positives only
    s = torch.where(labels == 1, logits - splc.margin, logits)
    y = torch.where(mask, torch.ones_like(labels), labels)
    p = torch.sigmoid(s)
    pt = y * (1 - p) + (1 - y) * p
    ce = -(y * torch.nn.functional.logsigmoid(s) + (1 - y) * torch.nn.functional.logsigmoid(-s))
    assert splc(logits, labels, 1).item() == pytest.approx((pt ** 2 * ce).sum().item(), rel=1e-12)
    # CLMLLoss passes the mask on; BCE has no correction of its own
    feats = torch.randn(16, 4, dtype=torch.float64)
    parts = CLMLLoss("SPLC", lambda_=1.0).forward_parts(logits, feats, labels, epoch=1)
    assert torch.equal(parts.base_mined, mask)
    assert CLMLLoss("BCE").forward_parts(logits, feats, labels, epoch=1).base_mined is None
