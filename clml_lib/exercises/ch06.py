r"""Exercise checkers of notebook 06 (official code audit).

Solutions: ``notebooks/solutions/ch06.py``.
"""

from __future__ import annotations

import torch

from . import close, verdict


def check_fixed_backward(answer) -> bool:
    """Exercise 06.1. ``answer``: a ``torch.autograd.Function`` subclass whose ``apply(Z, Y)``
    returns the low-rank term (Delta = 1, lambda = 1) and whose backward honours ``grad_output``:
    the gradient of ``S * apply(Z, Y)`` must be ``S`` times the true gradient, for any S."""
    from clml_lib.losses import low_rank_loss_reference

    g = torch.Generator().manual_seed(61)
    Z0 = torch.randn(16, 6, generator=g, dtype=torch.float64).relu() + 0.1  # (16, 6)
    Y = (torch.rand(16, 3, generator=g) < 0.5).double()  # (16, 3)
    Y[torch.arange(16), torch.arange(16) % 3] = 1

    def judge(fn):
        Zr = Z0.clone().requires_grad_(True)
        value = low_rank_loss_reference(Zr, Y)
        (ref,) = torch.autograd.grad(value, Zr)
        got = torch.as_tensor(fn.apply(Z0.clone(), Y), dtype=torch.float64)
        if got.numel() != 1 or not torch.allclose(got.reshape(()), value.detach(), rtol=1e-9):
            return "apply(Z, Y) must return the low-rank term itself (a NaN or inf never is)"
        for S in (1.0, 2.0**16):
            Z = Z0.clone().requires_grad_(True)
            (grad,) = torch.autograd.grad(S * fn.apply(Z, Y), Z)
            if not torch.allclose(grad, S * ref, rtol=1e-6, atol=1e-12):
                return f"with an outer factor S = {S:g} the gradient is not S x the true one"
        return None

    return verdict("06.1 a backward that honours grad_output", answer, judge)


def _label_matrices():
    """Label matrices (N, C) on which the 2022 bound is tested."""
    g = torch.Generator().manual_seed(62)
    Y1 = (torch.rand(20, 6, generator=g) < 0.3).double()
    Y1[torch.arange(20), torch.arange(20) % 6] = 1  # random, some images with one label
    Y2 = torch.zeros(10, 4, dtype=torch.float64)
    Y2[:, :2] = 1  # every image carries the same two labels
    Y3 = torch.ones(6, 5, dtype=torch.float64)
    Y3[0, 4] = 0  # every image has 5 labels, one has 4
    return [Y1, Y2, Y3]


def check_bounded_lambda(answer) -> bool:
    """Exercise 06.2. ``answer``: a function ``f(Y)`` returning, for a 0/1 label matrix ``Y``
    (N, C) with at least one label per image, the largest lambda for which the 2022 form
    (lambda / N) (sum_k max(Delta, ||Z_k||_*) - lambda ||Z||_*)
    is bounded below over all features Z (of any dimension)."""

    def loss_2022(Z, Y, lam):
        nuc = lambda A: float(torch.linalg.svdvals(A).sum()) if len(A) else 0.0  # noqa: E731
        local = sum(max(1.0, nuc(Z[Y[:, k] == 1])) for k in range(Y.shape[1]))
        return lam * (local - lam * nuc(Z)) / Z.shape[0]

    def judge(f):
        for Y in _label_matrices():
            lam_star = float(f(Y))
            m = Y.sum(1)
            if lam_star > float(m.min()) + 1e-9:
                return "too large: a feature matrix with one non-zero row gives the ratio m_i"
            if lam_star < float(m.min()) - 1e-9:
                return (
                    "too small: the triangle inequality over the label blocks gives "
                    "sum_k ||Z_k||_* >= ||diag(m) Z||_* >= min_i m_i ||Z||_*"
                )
            # the checker's own witness: just above lambda*, one scaled-up row drives the loss down
            i = int(m.argmin())
            Z = torch.zeros(Y.shape[0], 3, dtype=torch.float64)
            Z[i, 0] = 1.0
            assert (
                loss_2022(1e6 * Z, Y, lam_star + 0.25)
                < loss_2022(1e3 * Z, Y, lam_star + 0.25) - 1.0
            )
        return None

    return verdict(
        "06.2 when the 2022 form is bounded below", answer, judge, ok="lambda* = min_i m_i"
    )


def check_equivalent_lambda_n16(answer: float | None) -> bool:
    """Exercise 06.3. ``answer``: the lambda for ``reduction='mean'`` equivalent to lambda = 1 with
    a summed base loss, at the reference's argparse default N = 16 and C = 80."""
    from clml_lib.losses import equivalent_lambda

    expected = 1.0 / (16 * 80)
    assert close(equivalent_lambda(1.0, 16, 80), expected)  # the library agrees

    def judge(a):
        if not close(a, expected, rtol=1e-9):
            return "a mean over N * C entries: N is 16 here"
        return None

    return verdict("06.3 equivalent lambda at N = 16", answer, judge)
