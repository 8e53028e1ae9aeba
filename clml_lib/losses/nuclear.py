r"""The low-rank (nuclear-norm) CLML objective, docs/method.md §2.3.

$$
\mathcal L_{\text{low-rank}}(\mathbf Z,\hat{\mathbf Y})=\frac{1}{N}\Big(\sum_{k=1}^{C}
\max\big(\Delta,\lVert\mathbf Z_k\rVert_*\big)-\lVert\mathbf Z\rVert_*\Big)
$$

with $\mathbf Z\in\mathbb R^{N\times D}$ the batch features and $\mathbf Z_k$ the rows whose
(corrected) label $k$ is 1. ``CLMLLoss`` multiplies this by $\lambda$.

Gradients (docs/method.md §2.5). For $\mathbf A=\mathbf U\boldsymbol\Sigma\mathbf V^\top$ we use the
subgradient $\mathbf U_r\mathbf V_r^\top$ over the singular values above a cut-off (the $W=0$
element of the subdifferential; at $\mathbf A=0$ it is $0$). It is carried by autograd, not by a
hand-written gradient that ignores the chain rule: it is multiplied by ``grad_output`` like
every other gradient and stays
correct under ``GradScaler`` (the official code's custom backward ignores ``grad_output``; see
:mod:`clml_lib.losses.official`). The trick: with the basis detached,

$$
\lVert\mathbf A\rVert_* = \operatorname{tr}\big(\mathbf U_r^\top\mathbf A\mathbf V_r\big),\qquad
\frac{\partial}{\partial\mathbf A}\operatorname{tr}\big(\mathbf U_r^\top\mathbf A\mathbf V_r\big)
=\mathbf U_r\mathbf V_r^\top .
$$

Batched route. $\lVert\mathbf Z_k\rVert_*=\sum_r\sqrt{\mu_r}$ with $\mu_r$ the eigenvalues of the
Gram block $\mathbf G_k=\mathbf Z_k\mathbf Z_k^\top=\mathbf G[\mathcal P_k,\mathcal P_k]$, where
$\mathbf G=\mathbf Z\mathbf Z^\top$ is computed once. With
$\mathbf G_k=\mathbf Q\,\mathrm{diag}(\mu)\mathbf Q^\top$,
$\mathbf U_r\mathbf V_r^\top=\mathbf M_k\mathbf Z_k$ where
$\mathbf M_k=\mathbf Q_r\,\mathrm{diag}(\mu_r^{-1/2})\mathbf Q_r^\top$. Scattering every active
$\mathbf M_k$ into an $N\times N$ matrix
$\mathbf B=\sum_{k\ \text{active}}\mathbf E_k\mathbf M_k\mathbf E_k^\top-\mathbf M$
gives the whole gradient $\partial\mathcal L/\partial\mathbf Z=\mathbf B\mathbf Z/N$: one
$N\times N$ by $N\times D$ product, computed in the forward pass and handed to autograd by a
small ``Function`` whose backward returns ``grad_output`` times it (first order only).
One $N\times N$ Gram matrix and one batched ``eigh`` per size group (single-member labels in
closed form; counts 2-4, 5-16, 17-64, ... padded to the group's largest count) replace
$C+1$ SVDs of $n_k\times D$ matrices. At N = 64 the cost is per-call overhead more than
arithmetic, hence few groups, one scatter per group and no Python loop over labels
(docs/performance.md has the profile).

Numerics. Gram matrices and eigendecompositions are always float64 (even under autocast or for
float16 features): squaring singular values squares the condition number, and float64 keeps
the relative noise floor of $\sqrt{\mu}$ near $10^{-7}$. Singular values below
``max(eps, rel_eps * s_max)`` count as zero (value and gradient). The product that carries the
gradient runs in float32 (float64 for float64 features), outside autocast.

Decisions (docs/method.md §6): $\Delta$ floor kept ($\Delta=1$); the floor's subgradient at
$\lVert\mathbf Z_k\rVert_*=\Delta$ is 0 (a label is *active* only when strictly above $\Delta$,
as in the official code); a label absent from the batch adds the constant $\Delta$ with no
gradient (as the reference does: it shows up in the logged value only); the $1/N$ factor is kept.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..checks import Range
from .checks import check_features_labels, check_floating

#: Floor $\Delta$ of the per-label nuclear norms: $[0, \infty)$ (NaN and inf refused).
DELTA_RANGE = Range(0.0, None)

#: Absolute singular-value cut-off of the official code (singular values below it are dropped).
SVD_EPS = 1e-6
#: Relative cut-off for the Gram / eigh route (float64 noise floor is ~1e-7 * s_max at N=64).
REL_EPS = 1e-6


def _compute_dtype(x: Tensor) -> torch.dtype:
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def nuclear_norm(A: Tensor, eps: float = SVD_EPS, rel_eps: float = 0.0) -> Tensor:
    r"""Nuclear norm $\lVert\mathbf A\rVert_*=\sum_r\sigma_r$ (one SVD), with the subgradient
    $\mathbf U_r\mathbf V_r^\top$.

    Args:
        A: matrix of shape ``(n, D)`` (``n`` may be 0: the norm is 0).
        eps: absolute cut-off; singular values ``<= max(eps, rel_eps * sigma_max)`` are left out
            of the subgradient (their sum still enters the value).
        rel_eps: relative cut-off (0 = absolute only, as in the official code).

    Returns:
        0-dim tensor in float32 (float64 for float64 input). Differentiable through autograd
        (first order): the gradient is ``grad_output * U_r V_r^T``. At ``A = 0`` it is 0.

    Raises:
        ValueError: ``A`` is not 2-D, or holds NaN / inf.
    """
    if not isinstance(A, Tensor) or A.dim() != 2:
        got = tuple(A.shape) if isinstance(A, Tensor) else type(A).__name__
        raise ValueError(f"nuclear_norm expects a 2-D matrix (n, D), got {got}")
    cd = _compute_dtype(A)
    if A.numel() == 0:
        return A.sum().to(cd) * 0.0
    check_floating(A, "A")
    with torch.autocast(device_type=A.device.type, enabled=False):
        Ac = A.to(cd)  # (n, D)
        with torch.no_grad():
            U, S, Vh = torch.linalg.svd(
                Ac.detach().double(), full_matrices=False
            )  # (n,r) (r,) (r,D)
            cut = max(float(eps), float(rel_eps) * float(S.max()))
            keep = S > cut  # (r,)
            Ur, Vr = U[:, keep].to(cd), Vh[keep].T.to(cd)  # (n, r'), (D, r')
            value = S.sum().to(cd)
        # tr(U_r^T A V_r) equals sum of the kept singular values; its gradient is U_r V_r^T
        surrogate = (Ur * (Ac @ Vr)).sum()  # ()
        return surrogate + (value - surrogate.detach())


class _WithGradient(torch.autograd.Function):
    """``forward(Z (N, D), value (), W (N, D)) -> value``; ``backward`` returns
    ``grad_output * W`` for ``Z`` (first order only). The chain rule is kept: the gradient is
    multiplied by ``grad_output`` like every other gradient (GradScaler, outer weights)."""

    @staticmethod
    def forward(ctx, Z: Tensor, value: Tensor, W: Tensor) -> Tensor:
        ctx.save_for_backward(W)
        return value.clone()

    @staticmethod
    def backward(ctx, grad_output: Tensor):
        (W,) = ctx.saved_tensors
        return grad_output * W, None, None


def _size_buckets(counts: list[int]) -> list[tuple[int, list[int]]]:
    """Group present labels by member count: ``[(padded size, label ids)]``.

    Size 1 has its own group (closed form, no ``eigh``); larger counts are grouped by their
    next power of four (2-4, 5-16, 17-64, ...), so a batch of N = 64 images needs at most three
    batched ``eigh`` calls: per-call overhead, not arithmetic, dominates at these sizes. Each
    group is padded only to its largest count (a label alone in its group is not padded).
    Runs on the host: the counts are C small ints (one device sync per batch).
    """
    buckets: dict[int, list[int]] = {}
    for k, n in enumerate(counts):
        if n > 0:
            buckets.setdefault(0 if n == 1 else ((int(n) - 1).bit_length() + 1) // 2, []).append(k)
    return [(max(counts[k] for k in ks), ks) for _, ks in sorted(buckets.items())]


def _pinv_sqrt(gram: Tensor, eps: float, rel_eps: float) -> tuple[Tensor, Tensor]:
    r"""For a batch of PSD Gram matrices ``(K, n, n)``: nuclear norms ``(K,)`` and
    $\mathbf M=\mathbf Q_r\mathrm{diag}(\mu_r^{-1/2})\mathbf Q_r^\top$ ``(K, n, n)`` (float64).
    Zero padding rows/columns give zero eigenvalues, which fall under the cut-off."""
    if gram.shape[-1] == 1:  # closed form: ||z|| and M = 1 / ||z|| (0 under the cut-off)
        s = gram.clamp_min(0.0).sqrt()  # (K, 1, 1)
        inv = torch.where(s > eps, s, torch.inf).reciprocal()  # (K, 1, 1)
        return s.flatten() * (inv.flatten() > 0), inv
    mu, Q = torch.linalg.eigh(gram)  # (K, n), (K, n, n); ascending eigenvalues
    s = mu.clamp_min(0.0).sqrt()  # (K, n) singular values of Z_k
    cut = (rel_eps * s[..., -1:]).clamp_min(eps)  # (K, 1): s[..., -1] is the largest
    keep = s > cut  # (K, n)
    inv = torch.where(keep, s, torch.inf).reciprocal()  # (K, n): 1/s, 0 under the cut-off
    M = (Q * inv.unsqueeze(-2)) @ Q.mT  # (K, n, n)
    return (s * keep).sum(-1), M


def low_rank_terms(
    features: Tensor,
    labels: Tensor,
    delta: float = 1.0,
    global_weight: float = 1.0,
    eps: float = SVD_EPS,
    rel_eps: float = REL_EPS,
    *,
    check_inputs: bool = True,
) -> tuple[Tensor, dict[str, Tensor]]:
    r"""Batched low-rank objective and its parts (see the module docstring for the maths).

    Args:
        features: $\mathbf Z$, shape ``(N, D)``.
        labels: $\hat{\mathbf Y}$, shape ``(N, C)``, 0/1 (bool allowed).
        delta: the floor $\Delta \ge 0$.
        global_weight: weight of $\lVert\mathbf Z\rVert_*$ (1 in the 2023 code; $\lambda$ in the
            2022 code, docs/method.md §5.4).
        eps, rel_eps: singular-value cut-offs (absolute, relative to the largest).
        check_inputs: validate the tensors (shapes, codes, NaN/inf; each costs a host sync on
            a GPU).
            ``CLMLLoss`` validates a batch once and passes False.

    Returns:
        ``(loss, parts)``: the 0-dim loss (float32, float64 for float64 features) and a dict of
        detached float64 tensors: ``label_norms`` ``(C,)`` ($\lVert\mathbf Z_k\rVert_*$, 0 for
        absent labels), ``global_norm`` ``()``, ``active`` ``(C,)`` bool (labels above the floor).

    Raises:
        ValueError: bad shapes, non-finite features, labels outside {0, 1}, ``delta < 0``.
    """
    if check_inputs:
        check_features_labels(features, labels)
    delta = DELTA_RANGE.check("delta", delta)
    N = features.shape[0]
    cd = _compute_dtype(features)
    dev = features.device
    with torch.autocast(device_type=dev.type, enabled=False):
        Z = features.to(cd)  # (N, D)
        with torch.no_grad():
            Y = labels.to(device=dev).bool()  # (N, C)
            C = Y.shape[1]
            Z64 = Z.detach().double()  # (N, D)
            # Gram matrix once, with one zero row/column (index N) that the padding points at
            Gp = torch.zeros(N + 1, N + 1, dtype=torch.float64, device=dev)  # (N+1, N+1)
            torch.mm(Z64, Z64.T, out=Gp[:N, :N])
            g_norm, M_glob = _pinv_sqrt(Gp[:N, :N].unsqueeze(0), eps, rel_eps)  # (1,), (1, N, N)
            # member lists: row i of label k sits at position (rank of i among k's members)
            Yl = Y.T.long()  # (C, N)
            pos = torch.where(Y.T, Yl.cumsum(1) - 1, N)  # (C, N); non-members go to column N
            members = torch.full((C, N + 1), N, dtype=torch.long, device=dev)  # (C, N+1), pad = N
            members.scatter_(1, pos, torch.arange(N, device=dev).expand(C, N))
            counts = Yl.sum(1)  # (C,)
            label_norms = torch.zeros(C, dtype=torch.float64, device=dev)  # (C,)
            # B = sum_k E_k M_k E_k^T - w M in a padded (N+1, N+1) matrix (row/column N: padding)
            Bp = torch.zeros(N + 1, N + 1, dtype=torch.float64, device=dev)
            for size, ks_list in _size_buckets(counts.tolist()):
                ks = torch.tensor(ks_list, device=dev)  # (K,)
                rows = members[ks, :size].unsqueeze(-1)  # (K, size, 1) member rows, padded with N
                cols = rows.mT  # (K, 1, size)
                norms, Mk = _pinv_sqrt(Gp[rows, cols], eps, rel_eps)  # (K,), (K, size, size)
                label_norms[ks] = norms
                on = norms > float(delta)  # (K,) strictly above the floor: slope 1
                Bp.index_put_((rows, cols), Mk * on.view(-1, 1, 1), accumulate=True)
            B = (Bp[:N, :N] - float(global_weight) * M_glob[0]) / N  # (N, N), includes the 1/N
            active = label_norms > float(delta)  # (C,)
            floored = torch.clamp(label_norms, min=float(delta))  # (C,) absent labels give delta
            value = (floored.sum() - float(global_weight) * g_norm[0]) / N  # ()
            W = B.to(cd) @ Z.detach()  # (N, D) the gradient B Z / N (B is symmetric)
        loss = _WithGradient.apply(Z, value.to(cd), W)  # () value, gradient grad_output * W
    parts = {"label_norms": label_norms, "global_norm": g_norm[0], "active": active}
    return loss, parts


def low_rank_loss(
    features: Tensor,
    labels: Tensor,
    delta: float = 1.0,
    global_weight: float = 1.0,
    eps: float = SVD_EPS,
    rel_eps: float = REL_EPS,
    *,
    check_inputs: bool = True,
) -> Tensor:
    r"""Batched low-rank objective
    $\frac1N\big(\sum_k\max(\Delta,\lVert\mathbf Z_k\rVert_*)-\lVert\mathbf Z\rVert_*\big)$.

    Shapes: features $\mathbf Z$ ``(N, D)``, labels $\hat{\mathbf Y}$ ``(N, C)`` in {0, 1}.
    Returns a 0-dim tensor (float32, or float64 for float64 features) computed outside autocast.
    See :func:`low_rank_terms` for the arguments and errors.
    """
    return low_rank_terms(
        features, labels, delta, global_weight, eps, rel_eps, check_inputs=check_inputs
    )[0]


def low_rank_loss_reference(
    features: Tensor,
    labels: Tensor,
    delta: float = 1.0,
    global_weight: float = 1.0,
    eps: float = SVD_EPS,
) -> Tensor:
    r"""The same objective as :func:`low_rank_loss`, one SVD per label (the official structure).

    Loops over labels, takes $\mathbf Z_k$ = ``features[labels[:, k] == 1]`` and calls
    :func:`nuclear_norm`. Used by the tests, the benchmark and the notebooks as the plain
    reading of the equation. Shapes and errors as :func:`low_rank_loss`.
    """
    check_features_labels(features, labels)
    delta = DELTA_RANGE.check("delta", delta)
    N = features.shape[0]
    Y = labels.to(features.device).bool()  # (N, C)
    total = nuclear_norm(features, eps) * 0.0
    for k in range(Y.shape[1]):
        Zk = features[Y[:, k]]  # (n_k, D)
        if Zk.shape[0] == 0:
            total = total + float(delta)  # absent label: the constant floor, no gradient
            continue
        nk = nuclear_norm(Zk, eps)  # ()
        total = total + (
            nk if float(nk.detach()) > float(delta) else nk.detach() * 0.0 + float(delta)
        )
    return (total - float(global_weight) * nuclear_norm(features, eps)) / N
