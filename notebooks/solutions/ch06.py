"""Solutions to the exercises of notebook 06 (official code audit); written solutions in ch06.md.

Each ``solve_<name>()`` returns an answer that ``clml_lib.exercises.ch06.check_<name>`` accepts;
``WRONG`` lists typical wrong answers the checkers must reject (tests/test_solutions.py).
"""

import torch


def _value_and_grad(Z, Y, delta=1.0):
    """Low-rank value and its subgradient U_r V_r^T, one SVD per label (float64)."""
    N = Z.shape[0]
    grad = torch.zeros_like(Z)
    total = 0.0
    for k in range(Y.shape[1]):
        rows = Y[:, k] == 1
        if not rows.any():
            total += delta
            continue
        U, S, Vh = torch.linalg.svd(Z[rows], full_matrices=False)
        keep = S > 1e-6
        total += max(delta, float(S.sum()))
        if float(S.sum()) > delta:
            grad[rows] += U[:, keep] @ Vh[keep]
    U, S, Vh = torch.linalg.svd(Z, full_matrices=False)
    keep = S > 1e-6
    grad -= U[:, keep] @ Vh[keep]
    return torch.tensor((total - float(S.sum())) / N, dtype=Z.dtype), grad / N


class FixedBackward(torch.autograd.Function):
    """The official structure (gradient computed in forward, returned by backward), fixed by
    multiplying the stored gradient by ``grad_output``."""

    @staticmethod
    def forward(ctx, Z, Y):
        value, grad = _value_and_grad(Z.detach(), Y)
        ctx.save_for_backward(grad)
        return value

    @staticmethod
    def backward(ctx, grad_output):
        (grad,) = ctx.saved_tensors
        return grad_output * grad, None  # the fix: the chain rule


class IgnoresGradOutput(FixedBackward):
    @staticmethod
    def backward(ctx, grad_output):
        (grad,) = ctx.saved_tensors
        return grad, None  # the official bug


def solve_fixed_backward():
    return FixedBackward


def solve_bounded_lambda():
    return lambda Y: float(Y.sum(1).min())  # the fewest labels carried by one image


def solve_equivalent_lambda_n16():
    return 1.0 / (16 * 80)


WRONG = {
    "fixed_backward": [IgnoresGradOutput],
    "bounded_lambda": [lambda Y: 1.0, lambda Y: float(Y.sum(1).mean())],
    "equivalent_lambda_n16": [1 / (64 * 80), 1 / 16],
}
