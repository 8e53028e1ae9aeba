"""The low-rank CLML objective: values and gradients against float64 autograd references."""

import pytest
import torch

from clml_lib.losses import low_rank_loss, low_rank_loss_reference, low_rank_terms, nuclear_norm


def autograd_reference(Z, Y, delta=1.0, global_weight=1.0):
    """Float64 reference built on torch.linalg.matrix_norm(ord='nuc') and plain autograd."""
    N = Z.shape[0]
    total = Z.new_zeros(())
    for k in range(Y.shape[1]):
        Zk = Z[Y[:, k] == 1]
        if Zk.shape[0] == 0:
            total = total + delta
            continue
        nk = torch.linalg.matrix_norm(Zk, ord="nuc")
        total = total + (nk if nk.item() > delta else nk.detach() * 0 + delta)
    return (total - global_weight * torch.linalg.matrix_norm(Z, ord="nuc")) / N


def random_batch(N, D, C, p=0.3, seed=0):
    g = torch.Generator().manual_seed(seed)
    Z = torch.randn(N, D, generator=g, dtype=torch.float64)
    Y = (torch.rand(N, C, generator=g) < p).double()
    return Z, Y


@pytest.mark.parametrize(
    "N,D,C", [(4, 8, 3), (16, 32, 6), (33, 64, 12), (64, 256, 20), (24, 10, 5)]
)
def test_value_and_gradient_match_float64_autograd(N, D, C):
    Z, Y = random_batch(N, D, C, seed=N)
    Z1 = Z.clone().requires_grad_(True)
    Z2 = Z.clone().requires_grad_(True)
    ours = low_rank_loss(Z1, Y)
    ref = autograd_reference(Z2, Y)
    (g1,) = torch.autograd.grad(ours, Z1)
    (g2,) = torch.autograd.grad(ref, Z2)
    assert ours.dtype == torch.float64
    torch.testing.assert_close(ours, ref, rtol=1e-6, atol=0)
    torch.testing.assert_close(g1, g2, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_batched_equals_per_label_reference(seed):
    Z, Y = random_batch(32, 128, 10, seed=seed)
    Y[:, 0] = 0  # an absent label
    Y[3, 1] = 1
    Y[:, 1] = 0
    Y[3, 1] = 1  # a single-member label
    Z1, Z2 = Z.clone().requires_grad_(), Z.clone().requires_grad_()
    a, b = low_rank_loss(Z1, Y), low_rank_loss_reference(Z2, Y)
    torch.testing.assert_close(a, b, rtol=1e-9, atol=0)
    (ga,) = torch.autograd.grad(a, Z1)
    (gb,) = torch.autograd.grad(b, Z2)
    torch.testing.assert_close(ga, gb, rtol=1e-7, atol=1e-10)


def test_batch_permutation_invariance():
    Z, Y = random_batch(20, 40, 7, seed=3)
    perm = torch.randperm(20, generator=torch.Generator().manual_seed(1))
    Z1 = Z.clone().requires_grad_()
    Z2 = Z[perm].clone().requires_grad_()
    a, b = low_rank_loss(Z1, Y), low_rank_loss(Z2, Y[perm])
    torch.testing.assert_close(a, b, rtol=1e-12, atol=0)
    (ga,) = torch.autograd.grad(a, Z1)
    (gb,) = torch.autograd.grad(b, Z2)
    torch.testing.assert_close(ga[perm], gb, rtol=1e-9, atol=1e-12)


def test_single_member_label_gradient_is_unit_row():
    # one label, one member, delta below its norm; no global term
    z = torch.tensor([[3.0, 4.0, 0.0]], dtype=torch.float64)
    Z = torch.cat([z, torch.zeros(2, 3, dtype=torch.float64)]).requires_grad_()
    Y = torch.tensor([[1.0], [0.0], [0.0]], dtype=torch.float64)
    loss = low_rank_loss(Z, Y, delta=1.0, global_weight=0.0)
    (g,) = torch.autograd.grad(loss, Z)
    N = 3
    torch.testing.assert_close(loss, torch.tensor(5.0 / N, dtype=torch.float64))
    torch.testing.assert_close(g[0], (z[0] / z[0].norm()) / N)
    assert torch.all(g[1:] == 0)


def test_absent_labels_add_delta_without_gradient():
    Z, Y = random_batch(10, 12, 4, seed=5)
    Y[:, 2] = 0
    extra = torch.zeros(10, 3, dtype=torch.float64)  # three more absent labels
    a = low_rank_loss(Z, Y, delta=0.7)
    b = low_rank_loss(Z, torch.cat([Y, extra], 1), delta=0.7)
    torch.testing.assert_close(b - a, torch.tensor(3 * 0.7 / 10, dtype=torch.float64))
    Zr = Z.clone().requires_grad_()
    (g1,) = torch.autograd.grad(low_rank_loss(Zr, Y, delta=0.7), Zr)
    (g2,) = torch.autograd.grad(low_rank_loss(Zr, torch.cat([Y, extra], 1), delta=0.7), Zr)
    torch.testing.assert_close(g1, g2)


def test_delta_floor_switches_off_small_labels():
    Z = torch.zeros(4, 3, dtype=torch.float64)
    Z[0, 0], Z[1, 1] = 0.2, 0.3  # label 0 = rows {0,1}: nuclear norm 0.5 < delta
    Z[2, 2] = 5.0  # label 1 = row 2: nuclear norm 5 > delta
    Y = torch.tensor([[1, 0], [1, 0], [0, 1], [0, 0]], dtype=torch.float64)
    Zr = Z.clone().requires_grad_()
    loss, parts = low_rank_terms(Zr, Y, delta=1.0, global_weight=0.0)
    torch.testing.assert_close(parts["label_norms"], torch.tensor([0.5, 5.0], dtype=torch.float64))
    assert parts["active"].tolist() == [False, True]
    torch.testing.assert_close(loss, torch.tensor((1.0 + 5.0) / 4, dtype=torch.float64))
    (g,) = torch.autograd.grad(loss, Zr)
    assert torch.all(g[:2] == 0)  # floored label: no pull
    torch.testing.assert_close(g[2], torch.tensor([0, 0, 1.0 / 4], dtype=torch.float64))


def test_non_negative_when_every_image_has_a_label():
    Z, Y = random_batch(24, 48, 6, seed=7)
    Y[Y.sum(1) == 0, 0] = 1
    assert low_rank_loss(Z, Y, delta=0.0).item() >= -1e-12


def test_zero_features_and_rank_deficient_batches_are_finite():
    Y = (torch.rand(8, 4, generator=torch.Generator().manual_seed(0)) < 0.5).float()
    Y[:, 0] = 1
    zero = torch.zeros(8, 16, requires_grad=True)
    loss = low_rank_loss(zero, Y)
    loss.backward()
    assert torch.isfinite(loss) and torch.all(zero.grad == 0)  # subgradient 0 at Z = 0
    rank1 = (torch.randn(8, 1) @ torch.randn(1, 16)).requires_grad_()
    dup = torch.randn(1, 16).repeat(8, 1).requires_grad_()
    for Z in (rank1, dup):
        loss = low_rank_loss(Z, Y)
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(Z.grad).all()
        ref = low_rank_loss_reference(Z.detach().double(), Y.double())
        torch.testing.assert_close(loss.double(), ref, rtol=1e-4, atol=1e-5)


def test_nuclear_norm_value_gradient_and_zero():
    A = torch.randn(5, 9, dtype=torch.float64, requires_grad=True)
    v = nuclear_norm(A)
    torch.testing.assert_close(v, torch.linalg.svdvals(A).sum())
    (g,) = torch.autograd.grad(v, A)
    U, S, Vh = torch.linalg.svd(A.detach(), full_matrices=False)
    torch.testing.assert_close(g, U @ Vh)
    assert torch.autograd.gradcheck(
        nuclear_norm, (torch.randn(4, 6, dtype=torch.float64, requires_grad=True),)
    )
    Z0 = torch.zeros(3, 4, requires_grad=True)
    nuclear_norm(Z0).backward()
    assert torch.all(Z0.grad == 0)
    assert nuclear_norm(torch.zeros(0, 4)).item() == 0.0


def test_gradient_scales_with_grad_output():
    Z, Y = random_batch(12, 20, 4, seed=9)
    Zr = Z.clone().requires_grad_()
    (g1,) = torch.autograd.grad(low_rank_loss(Zr, Y), Zr)
    (g2,) = torch.autograd.grad(1000.0 * low_rank_loss(Zr, Y), Zr)
    torch.testing.assert_close(g2, 1000.0 * g1)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_autocast_on_cpu_is_finite_and_close_to_float32(dtype):
    torch.manual_seed(0)
    lin = torch.nn.Linear(32, 64)
    x = torch.randn(24, 32)
    Y = (torch.rand(24, 6) < 0.3).float()
    Z32 = lin(x)
    ref = low_rank_loss(Z32, Y)
    (gref,) = torch.autograd.grad(ref, lin.weight)
    with torch.autocast("cpu", dtype=dtype):
        Z = lin(x)
        assert Z.dtype == dtype
        loss = low_rank_loss(Z, Y)
    assert loss.dtype == torch.float32
    (g,) = torch.autograd.grad(loss, lin.weight)
    assert torch.isfinite(loss) and torch.isfinite(g).all()
    torch.testing.assert_close(loss, ref, rtol=3e-2, atol=3e-2)
    assert (g - gref).norm() / gref.norm() < 0.1


@pytest.mark.parametrize(
    "features,labels,match",
    [
        (torch.randn(4, 3), torch.ones(5, 2), "N = 4 rows"),
        (torch.randn(4), torch.ones(4, 2), "2-D"),
        (torch.randn(0, 3), torch.ones(0, 2), "empty batch"),
        (torch.randn(4, 3), torch.full((4, 2), 2.0), r"only \{0, 1\}"),
        (torch.randn(4, 3), -torch.ones(4, 2), r"only \{0, 1\}"),
        (torch.tensor([[float("nan"), 0.0], [1.0, 1.0]]), torch.ones(2, 2), "1 NaN"),
        (torch.tensor([[float("inf"), 0.0], [1.0, 1.0]]), torch.ones(2, 2), "1 inf"),
        (torch.ones(3, 2, dtype=torch.long), torch.ones(3, 2), "floating-point"),
    ],
)
def test_bad_inputs_raise_clear_errors(features, labels, match):
    for fn in (low_rank_loss, low_rank_loss_reference):
        with pytest.raises(ValueError, match=match):
            fn(features, labels)


def test_negative_delta_rejected():
    with pytest.raises(ValueError, match=r"delta must be in \[0, inf\)"):
        low_rank_loss(torch.randn(3, 2), torch.ones(3, 1), delta=-1.0)


def test_size_groups_cover_every_present_label_once():
    from clml_lib.losses.nuclear import _size_buckets

    counts = [0, 1, 2, 3, 4, 5, 16, 17, 64, 1, 0, 9]
    groups = _size_buckets(counts)
    # single members alone; 2-4, 5-16, 17-64 grouped and padded to the group's largest count
    assert groups == [(1, [1, 9]), (4, [2, 3, 4]), (16, [5, 6, 11]), (64, [7, 8])]


def test_padded_groups_match_float64_autograd():
    # labels with 1..40 members, so every group holds labels of different counts (padding)
    g = torch.Generator().manual_seed(11)
    N, D = 48, 96
    Z = torch.randn(N, D, generator=g, dtype=torch.float64)
    counts = [1, 2, 3, 4, 5, 7, 11, 16, 17, 23, 40, 1]
    Y = torch.zeros(N, len(counts), dtype=torch.float64)
    for k, n in enumerate(counts):
        Y[torch.randperm(N, generator=g)[:n], k] = 1
    Z1, Z2 = Z.clone().requires_grad_(), Z.clone().requires_grad_()
    ours, ref = low_rank_loss(Z1, Y, delta=2.0), autograd_reference(Z2, Y, delta=2.0)
    (g1,) = torch.autograd.grad(ours, Z1)
    (g2,) = torch.autograd.grad(ref, Z2)
    torch.testing.assert_close(ours, ref, rtol=1e-9, atol=0)
    torch.testing.assert_close(g1, g2, rtol=1e-7, atol=1e-10)


def test_official_route_matches_float64_reference_and_ignores_grad_output():
    from clml_lib.losses.official import official_numpy_value_grad, official_route_low_rank

    g = torch.Generator().manual_seed(4)
    Z = torch.randn(32, 64, generator=g).relu()  # float32, as the official code runs
    Y = (torch.rand(32, 10, generator=g) < 0.2).float()
    Y[:, 3] = 0  # an absent label
    Y[:, 4] = 0
    Y[5, 4] = 1  # a single-member label
    Z64 = Z.double().requires_grad_()
    ref = autograd_reference(Z64, Y.double())
    (gref,) = torch.autograd.grad(ref, Z64)
    value, dX = official_numpy_value_grad(Z, Y)
    assert dX.dtype == torch.float32 and dX.shape == Z.shape
    assert abs(value - ref.item()) <= 1e-5 * abs(ref.item())
    assert float((dX.double() - gref).norm() / gref.norm()) < 1e-5
    Zr = Z.clone().requires_grad_()
    (3.0 * official_route_low_rank(Zr, Y, lambda_=2.0)).backward()
    torch.testing.assert_close(Zr.grad, 2.0 * dX)  # lambda applied, outer 3.0 ignored (the defect)
    with pytest.raises(ValueError, match=r"only \{0, 1\}"):
        official_numpy_value_grad(Z, 2 * Y)


def test_float32_batched_route_close_to_float64():
    g = torch.Generator().manual_seed(6)
    Z = torch.randn(64, 512, generator=g).relu()
    Y = (torch.rand(64, 30, generator=g) < 0.1).float()
    Z32, Z64 = Z.clone().requires_grad_(), Z.double().requires_grad_()
    a, b = low_rank_loss(Z32, Y), autograd_reference(Z64, Y.double())
    (ga,) = torch.autograd.grad(a, Z32)
    (gb,) = torch.autograd.grad(b, Z64)
    assert a.dtype == torch.float32
    assert abs(a.item() - b.item()) <= 1e-5 * abs(b.item())
    assert float((ga.double() - gb).norm() / gb.norm()) < 1e-5
