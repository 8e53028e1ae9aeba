r"""Exercise checkers of notebook 02 (contrastive loss).

Solutions: ``notebooks/solutions/ch02.py``.
"""

from __future__ import annotations

import math

import torch

from . import close, verdict

#: the 2-D toy batch of notebook 02 section 6: angles of 8 unit vectors and labels A, B, C
TOY_ANGLES = (0.3, 0.9, 2.2, 2.8, 4.0, 5.2, 1.5, 3.4)
TOY_LABELS = (
    (1, 0, 0),
    (1, 0, 0),
    (0, 1, 0),
    (0, 1, 0),
    (0, 0, 1),
    (0, 0, 1),
    (1, 1, 0),
    (0, 1, 1),
)


def check_pair_nuclear_norm(answer) -> bool:
    """Exercise 02.1. ``answer = (f, theta_max)``: ``f(theta)`` the nuclear norm of two unit vectors
    at angle ``theta`` (radians, float tensor in, tensor out) and ``theta_max`` the angle in
    [0, pi] where it is largest."""

    def judge(a):
        f, theta_max = a
        theta = torch.linspace(0, math.pi, 37, dtype=torch.float64)
        pairs = torch.stack(
            [
                torch.stack([torch.ones_like(theta), torch.zeros_like(theta)], 1),
                torch.stack([theta.cos(), theta.sin()], 1),
            ],
            1,
        )  # (37, 2, 2)
        svd = torch.linalg.svdvals(pairs).sum(-1)  # (37,) from the definition
        got = torch.as_tensor(f(theta), dtype=torch.float64)
        if got.shape != svd.shape or not torch.allclose(got, svd, atol=1e-9):
            return (
                "f disagrees with the singular values of [z1; z2]: use the eigenvalues of the Gram"
            )
        if not close(theta_max, math.pi / 2, atol=1e-6):
            return "where is sqrt(1+c) + sqrt(1-c) largest? (it is symmetric in c -> -c)"
        return None

    return verdict(
        "02.1 nuclear norm of a pair", answer, judge, ok="it measures |cos|, not similarity"
    )


def check_zero_loss_batch(answer) -> bool:
    """Exercise 02.2. ``answer = (Z, Y)``: a single-label batch (``Y`` one 1 per row), at least 3
    labels with at least 2 images each, no zero row, and D <= 6, whose low-rank loss with
    Delta = 0 is 0 (to 1e-9)."""

    def judge(a):
        Z, Y = (torch.as_tensor(t, dtype=torch.float64) for t in a)
        if Z.dim() != 2 or Y.dim() != 2 or Z.shape[0] != Y.shape[0]:
            return "Z must be (N, D) and Y (N, C)"
        if Z.shape[1] > 6:
            return "use at most D = 6 dimensions"
        if not bool(((Y == 0) | (Y == 1)).all()) or not bool((Y.sum(1) == 1).all()):
            return "every image must carry exactly one label (single-label data)"
        if int((Y.sum(0) >= 2).sum()) < 3:
            return "at least 3 labels need at least 2 images each"
        if bool((Z.norm(dim=1) < 1e-6).any()):
            return "no zero rows: a zero feature trivially satisfies everything"
        nuc = lambda A: torch.linalg.svdvals(A).sum()  # noqa: E731
        loss = sum(nuc(Z[Y[:, k] == 1]) for k in range(Y.shape[1]) if Y[:, k].any()) - nuc(Z)
        if not math.isfinite(float(loss)):  # finite features that overflow the SVD
            return "the loss is not a finite number: use features of moderate size"
        if float(loss) > 1e-9 * max(1.0, float(nuc(Z))):
            return (
                f"the loss is {float(loss):.3g} > 0: the theorem says which geometry gives equality"
            )
        return None

    return verdict("02.2 a batch with loss 0", answer, judge, ok="orthogonal label subspaces")


def check_push_weights(answer: dict | None) -> bool:
    """Exercise 02.3. ``answer = {T: (j, q)}`` for T in (0.1, 2.0): in the toy batch (anchor 0,
    label A, every other image a candidate), the image j with the largest softmax weight
    ``q_0j`` of the push, and that weight."""
    ang = torch.tensor(TOY_ANGLES, dtype=torch.float64)
    P = torch.stack([ang.cos(), ang.sin()], 1)  # (8, 2) unit vectors

    def judge(a):
        for T in (0.1, 2.0):
            if T not in a:
                return "give a dict with keys 0.1 and 2.0"
            sims = (P[1:] @ P[0]) / T  # (7,) candidates j = 1..7
            q = torch.softmax(sims, 0)
            j_exp, q_exp = int(q.argmax()) + 1, float(q.max())
            j, qv = a[T]
            if int(j) != j_exp:
                return f"at T={T} another image pushes hardest: the candidate closest to the anchor"
            if not close(qv, q_exp, rtol=1e-6):
                return f"the weight at T={T} is off: q_0j = exp(a_0j) / sum over candidates j'"
        return None

    return verdict("02.3 push weights", answer, judge, ok="low T: one hard candidate dominates")
