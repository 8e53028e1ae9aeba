"""Label correction (docs/method.md §2.1) and the pairwise per-label contrastive loss (2.2)."""

import math

import pytest
import torch

from clml_lib.losses import correct_labels, label_contrastive_loss, mine_false_negatives


def test_correction_rule_assume_negative():
    logit = math.log(0.75 / 0.25)  # sigmoid = 0.75 exactly (to float precision)
    logits = torch.tensor([[5.0, 5.0, -5.0, logit + 1e-3, logit - 1e-3]])
    labels = torch.tensor([[1.0, 0.0, 0.0, 0.0, 0.0]])
    corrected, mined = mine_false_negatives(logits, labels, tau=0.75, epoch=1)
    assert corrected.tolist() == [[1.0, 1.0, 0.0, 1.0, 0.0]]
    assert mined.tolist() == [[False, True, False, True, False]]
    # before start_epoch nothing is mined; observed positives always stay
    before = correct_labels(logits, labels, tau=0.75, epoch=0, start_epoch=1)
    assert before.tolist() == [[1.0, 0.0, 0.0, 0.0, 0.0]]
    # an observed positive with a very negative logit stays positive
    assert correct_labels(torch.tensor([[-9.0]]), torch.tensor([[1.0]]), 0.5, 3).item() == 1.0


def test_correction_is_strict_and_detached():
    logits = torch.zeros(2, 2, requires_grad=True)  # sigmoid = 0.5
    out = correct_labels(logits, torch.zeros(2, 2), tau=0.5, epoch=5)
    assert out.sum() == 0  # 0.5 > 0.5 is false
    assert not out.requires_grad
    out = correct_labels(logits, torch.zeros(2, 2), tau=0.4999, epoch=5)
    assert out.sum() == 4


def test_correction_ternary_protects_known_negatives():
    logits = torch.full((1, 3), 4.0)
    labels = torch.tensor([[1.0, 0.0, -1.0]])  # 0 = known negative, -1 = unknown
    corrected, mined = mine_false_negatives(logits, labels, 0.5, 1)
    assert corrected.tolist() == [[1.0, 0.0, 1.0]]
    assert mined.tolist() == [[False, False, True]]
    # fully-known ternary matrix: encoding='ternary' keeps its 0s
    assert correct_labels(
        logits, torch.tensor([[1.0, 0.0, 0.0]]), 0.5, 1, encoding="ternary"
    ).tolist() == [[1.0, 0.0, 0.0]]
    assert correct_labels(logits, torch.tensor([[1.0, 0.0, 0.0]]), 0.5, 1).tolist() == [
        [1.0, 1.0, 1.0]
    ]


def test_correction_half_precision_logits():
    logits = torch.randn(8, 4).to(torch.bfloat16)
    out = correct_labels(logits, torch.zeros(8, 4), 0.6, 1)
    assert out.dtype == torch.float32
    ref = (torch.sigmoid(logits.float()) > 0.6).float()
    assert torch.equal(out, ref)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(logits=torch.zeros(2, 3), labels=torch.zeros(2, 2)), "shape of logits"),
        (dict(logits=torch.zeros(2, 3), labels=torch.full((2, 3), 2.0)), r"\{-1, 0, 1\}"),
        (dict(logits=torch.tensor([[float("nan")]]), labels=torch.zeros(1, 1)), "NaN"),
        (dict(logits=torch.zeros(0, 3), labels=torch.zeros(0, 3)), "empty batch"),
        (dict(logits=torch.zeros(2, 3), labels=torch.zeros(2, 3), tau=1.5), "tau must be in"),
        (dict(logits=torch.zeros(2, 3), labels=torch.zeros(2, 3), epoch=-1), "epoch"),
        (dict(logits=torch.zeros(2, 3), labels=torch.zeros(2, 3), encoding="x"), "encoding"),
    ],
)
def test_correction_bad_inputs(kwargs, match):
    args = dict(tau=0.5, epoch=1) | kwargs
    with pytest.raises(ValueError, match=match):
        correct_labels(**args)


def loop_reference(Z, Y, T, negatives=None):
    """Per-anchor, per-label, per-positive loop in float64: the equation read literally."""
    Zn = Z / Z.norm(dim=1, keepdim=True)
    N, C = Y.shape
    Neg = (1 - Y) if negatives is None else negatives
    terms = []
    for i in range(N):
        for k in range(C):
            if Y[i, k] != 1:
                continue
            pos = [j for j in range(N) if j != i and Y[j, k] == 1]
            if not pos:
                continue
            cand = [j for j in range(N) if j != i and (Y[j, k] == 1 or Neg[j, k] == 1)]
            den = sum(torch.exp(Zn[i] @ Zn[j] / T) for j in cand)
            terms.append(
                -sum(torch.log(torch.exp(Zn[i] @ Zn[p] / T) / den) for p in pos) / len(pos)
            )
    return sum(terms) / len(terms)


@pytest.mark.parametrize("seed", [0, 1])
def test_contrastive_matches_loop_reference_value_and_gradient(seed):
    g = torch.Generator().manual_seed(seed)
    Z = torch.randn(9, 5, generator=g, dtype=torch.float64)
    Y = (torch.rand(9, 4, generator=g) < 0.4).double()
    Y[0, 3] = 1
    Y[:, 3] = 0
    Y[0, 3] = 1  # a label with a single member: its anchor has no positive and is skipped
    Z1, Z2 = Z.clone().requires_grad_(), Z.clone().requires_grad_()
    a = label_contrastive_loss(Z1, Y, temperature=0.5)
    b = loop_reference(Z2, Y, 0.5)
    torch.testing.assert_close(a, b, rtol=1e-10, atol=0)
    (ga,) = torch.autograd.grad(a, Z1)
    (gb,) = torch.autograd.grad(b, Z2)
    torch.testing.assert_close(ga, gb, rtol=1e-8, atol=1e-12)


def test_contrastive_explicit_negatives_mask():
    g = torch.Generator().manual_seed(3)
    Z = torch.randn(8, 4, generator=g, dtype=torch.float64)
    Y = (torch.rand(8, 3, generator=g) < 0.5).double()
    Neg = ((1 - Y) * (torch.rand(8, 3, generator=g) < 0.5)).double()  # only some known negatives
    torch.testing.assert_close(
        label_contrastive_loss(Z, Y, 0.3, negatives=Neg),
        loop_reference(Z, Y, 0.3, Neg),
        rtol=1e-10,
        atol=0,
    )
    with pytest.raises(ValueError, match="overlaps"):
        label_contrastive_loss(Z, Y, 0.3, negatives=torch.ones_like(Y))


def test_contrastive_no_positive_anywhere_gives_zero_with_gradient():
    Z = torch.randn(4, 3, requires_grad=True)
    Y = torch.eye(4)[:, :3]  # each label has at most one member
    loss = label_contrastive_loss(Z, Y)
    loss.backward()
    assert loss.item() == 0.0 and torch.all(Z.grad == 0)


def test_contrastive_extreme_scale_and_half_precision_are_finite():
    Z = torch.randn(16, 8) * 1e4
    Y = (torch.rand(16, 5) < 0.4).float()
    assert torch.isfinite(label_contrastive_loss(Z, Y, temperature=0.01))
    lin = torch.nn.Linear(8, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = label_contrastive_loss(lin(Z / 1e4), Y)
    loss.backward()
    assert loss.dtype == torch.float32 and torch.isfinite(lin.weight.grad).all()


def test_contrastive_bad_inputs():
    with pytest.raises(ValueError, match=r"temperature must be in \(0, inf\), got 0.0"):
        label_contrastive_loss(torch.randn(3, 2), torch.ones(3, 2), temperature=0)
    with pytest.raises(ValueError, match="N = 3 rows"):
        label_contrastive_loss(torch.randn(3, 2), torch.ones(4, 2))
    with pytest.raises(ValueError, match="NaN"):
        label_contrastive_loss(torch.tensor([[float("nan"), 1.0]]), torch.ones(1, 2))
