# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 03 · The low-rank terms: nuclear norms, their subgradient, and a batched Gram trick
#
# CLML's loss term (docs/method.md §2.3) is built from nuclear norms: a per-label **low-rank** term
# that
# pulls the images of one label together, and a global **high-rank** term that pushes the labels
# apart. This notebook builds it piece by piece, from scratch, and checks every piece against
# `clml_lib.losses`.
#
# **You will learn**
# 1. the nuclear norm and its subgradient $\mathbf U_r\mathbf V_r^\top$: derived, then checked with
#    finite differences and `torch.autograd.gradcheck`; what happens at rank deficiency and at
#    $\mathbf 0$;
# 2. the local terms $\sum_k\max(\Delta,\lVert\mathbf Z_k\rVert_*)$, the global term
#    $-\lVert\mathbf Z\rVert_*$, and
#    what the floor $\Delta$ does (without it the features collapse to $\mathbf 0$);
# 3. the Gram / `eigh` trick that computes all $C+1$ nuclear norms and the whole gradient from one
#    $N\times N$ matrix, and how much faster it is than $C+1$ SVDs;
# 4. what training with CLML does to the singular-value spectra of real embeddings
#    (global rank up; the share of it that one label occupies down).
#
# **Prerequisites:** SVD and eigendecomposition; autograd. Notebook 02 shows why these terms act as
# a
# contrastive loss; notebook 06 audits the official code's version of this gradient.
#
# **Runs in** about 1–2.5 minutes on 2 CPU cores, most of it two short training runs of one thread
# each (the measured time, date and machine load: notebooks/run_times.json).

# %%
from clml_lib.nb import setup_notebook

setup_notebook(seed=0, threads=1)  # one torch thread, as every notebook and training worker
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from clml_lib.losses import (
    CLMLLoss,
    low_rank_loss,
    low_rank_loss_reference,
    low_rank_terms,
    nuclear_norm,
)

# %% [markdown]
# ## 1. The nuclear norm
#
# For $\mathbf A\in\mathbb R^{n\times d}$ with thin SVD
# $\mathbf A=\mathbf U\boldsymbol\Sigma\mathbf V^\top$,
# $\boldsymbol\Sigma=\operatorname{diag}(\sigma_1\ge\dots\ge\sigma_{\min(n,d)}\ge0)$,
#
# $$
# \lVert\mathbf A\rVert_*=\sum_r\sigma_r(\mathbf A)=\operatorname{tr}\big((\mathbf A\mathbf
# A^\top)^{1/2}\big).
# $$
#
# It is a norm, and on the unit ball of the spectral norm it is the convex envelope of
# $\operatorname{rank}(\mathbf A)$: minimising it is the convex way to ask for low rank (as the
# $\ell_1$ norm asks for sparsity: it is the $\ell_1$ norm of the singular values). Three ways to
# compute it:

# %%
g = torch.Generator().manual_seed(0)
A = torch.randn(5, 7, generator=g, dtype=torch.float64)  # (n, d)
by_svd = torch.linalg.svdvals(A).sum()  # sum of singular values
mu, Q = torch.linalg.eigh(A @ A.T)  # (n,), (n, n) eigen-decomposition of A A^T
by_trace = (Q @ torch.diag(mu.clamp_min(0).sqrt()) @ Q.T).trace()  # tr((A A^T)^(1/2))
print(
    f"sum of singular values {by_svd:.6f}, tr((AA^T)^1/2) {by_trace:.6f}, "
    f"nuclear_norm {nuclear_norm(A):.6f}"
)
assert torch.allclose(by_svd, by_trace) and torch.allclose(by_svd, nuclear_norm(A))

# %% [markdown]
# ## 2. Its subgradient $\mathbf U_r\mathbf V_r^\top$
#
# **Where the norm is differentiable.** Let $\sigma_r>0$ be a simple singular value with singular
# vectors $\mathbf u_r,\mathbf v_r$. First-order perturbation theory gives
# $\sigma_r(\mathbf A+\mathbf H)=\sigma_r+\mathbf u_r^\top\mathbf H\mathbf v_r+O(\lVert\mathbf
# H\rVert^2)$
# (differentiate $\mathbf u_r^\top\mathbf A\mathbf v_r=\sigma_r$; the terms with $d\mathbf u_r$,
# $d\mathbf v_r$
# vanish because $\mathbf u_r^\top d\mathbf u_r=\mathbf v_r^\top d\mathbf v_r=0$). Summing over the
# $r$
# non-zero singular values,
#
# $$
# \lVert\mathbf A+\mathbf H\rVert_*=\lVert\mathbf A\rVert_*+\operatorname{tr}\big(\mathbf
# U_r^\top\mathbf H\mathbf V_r\big)+O(\lVert\mathbf H\rVert^2)
# \quad\Longrightarrow\quad
# \frac{\partial\lVert\mathbf A\rVert_*}{\partial\mathbf A}=\mathbf U_r\mathbf V_r^\top ,
# $$
#
# where $\mathbf U_r,\mathbf V_r$ hold the singular vectors of the non-zero singular values. If
# $\mathbf A$ has full rank $\min(n,d)$, this is the gradient.
#
# **Where it is not.** A zero singular value behaves like $|x|$ at $0$: the norm has a kink there.
# The subdifferential is
#
# $$
# \partial\lVert\mathbf A\rVert_*=\big\{\mathbf U_r\mathbf V_r^\top+\mathbf W:\ \mathbf
# U_r^\top\mathbf W=\mathbf 0,\ \mathbf W\mathbf V_r=\mathbf 0,\ \lVert\mathbf W\rVert_2\le1\big\},
# $$
#
# and, like the official code (docs/method.md §2.5), we take the element $\mathbf W=\mathbf 0$. Two
# consequences:
#
# * **the cut-off.** In floating point a zero singular value comes out as $\sim10^{-16}\sigma_1$,
#   never exactly $0$, and its singular vectors are arbitrary. Keeping it would add an arbitrary
#   rank-one piece of norm 1 to the gradient. So only $\sigma_r>\epsilon$ enter
#   $\mathbf U_r,\mathbf V_r$
#   ($\epsilon=10^{-6}$, the official value);
# * **at $\mathbf A=\mathbf 0$** every singular value is 0, $r=0$, and the subgradient is
#   $\mathbf 0$.
#
# From scratch, against central finite differences
# $\big(\lVert\mathbf A+h\mathbf E_{ij}\rVert_*-\lVert\mathbf A-h\mathbf E_{ij}\rVert_*\big)/2h$
# and against
# the autograd gradient of `clml_lib.losses.nuclear_norm`:


# %%
def subgradient(A, eps=1e-6):
    """U_r V_r^T over the singular values above eps; A (n, d) -> (n, d)."""
    U, S, Vh = torch.linalg.svd(A, full_matrices=False)  # (n, m), (m,), (m, d)
    keep = S > eps
    return U[:, keep] @ Vh[keep]  # (n, d)


h = 1e-6
fd = torch.zeros_like(A)  # (n, d) central finite differences, one entry at a time
for i in range(A.shape[0]):
    for j in range(A.shape[1]):
        E = torch.zeros_like(A)
        E[i, j] = h
        fd[i, j] = (torch.linalg.svdvals(A + E).sum() - torch.linalg.svdvals(A - E).sum()) / (2 * h)
A_ = A.clone().requires_grad_(True)
(lib_grad,) = torch.autograd.grad(nuclear_norm(A_), A_)
print("U_r V_r^T == finite differences:", torch.allclose(subgradient(A), fd, atol=1e-8))
print("U_r V_r^T == nuclear_norm's autograd gradient:", torch.allclose(subgradient(A), lib_grad))
assert torch.allclose(subgradient(A), fd, atol=1e-8) and torch.allclose(subgradient(A), lib_grad)

# %% [markdown]
# `torch.autograd.gradcheck` does the same comparison (finite differences vs the analytical
# gradient, in float64) for us:

# %%
print(
    "gradcheck(nuclear_norm):", torch.autograd.gradcheck(nuclear_norm, (A_,), eps=1e-6, atol=1e-6)
)

# %% [markdown]
# **Rank deficiency.** $\mathbf A_2$ of rank 2 (a $5\times7$ product of $5\times2$ and $2\times7$):
# its three zero singular values come out around $10^{-16}$. With the cut-off we get the
# $\mathbf W=\mathbf 0$ subgradient; with $\epsilon=0$ the three noise directions add three
# arbitrary
# unit rank-one pieces. The subgradient inequality
# $\lVert\mathbf B\rVert_*\ge\lVert\mathbf A_2\rVert_*+\langle\mathbf G,\mathbf B-\mathbf
# A_2\rangle$ must hold for
# every $\mathbf B$; we test 2000 random ones. And at $\mathbf 0$ the gradient is $\mathbf 0$.

# %%
A2 = torch.randn(5, 2, generator=g, dtype=torch.float64) @ torch.randn(
    2, 7, generator=g, dtype=torch.float64
)
sv = torch.linalg.svdvals(A2)  # (5,): two real ones, three at rounding level (~1e-16)
print(
    "singular values of A2:",
    ", ".join(f"{v:.3g}" for v in sv[sv > 1e-12].tolist()),
    f"and {int((sv <= 1e-12).sum())} below 1e-12 (rounding noise, their digits vary by CPU)",
)
assert int((sv > 1e-12).sum()) == 2 and sv[2:].max() < 1e-14
G_cut, G_nocut = subgradient(A2), subgradient(A2, eps=0.0)
print(
    f"||G(eps=1e-6)||_F^2 = {G_cut.norm() ** 2:.4f} (rank 2),  ||G(eps=0)||_F^2 = "
    f"{G_nocut.norm() ** 2:.4f}"
)
B = A2 + torch.randn(2000, 5, 7, generator=g, dtype=torch.float64)  # (2000, n, d) random points
lhs = torch.linalg.svdvals(B).sum(-1)  # (2000,) ||B||_*
rhs = nuclear_norm(A2) + ((B - A2) * G_cut).sum((-2, -1))  # (2000,) linearisation at A2
A2_ = A2.clone().requires_grad_(True)
(lib_grad2,) = torch.autograd.grad(nuclear_norm(A2_), A2_)
Z0 = torch.zeros(5, 7, dtype=torch.float64, requires_grad=True)
(grad0,) = torch.autograd.grad(nuclear_norm(Z0), Z0)
print("subgradient inequality holds for all B:", bool((lhs >= rhs - 1e-12).all()))
print(
    "library gradient == U_r V_r^T (r = 2):",
    torch.allclose(lib_grad2, G_cut),
    "| gradient at 0 is 0:",
    bool((grad0 == 0).all()),
)
assert (lhs >= rhs - 1e-12).all() and torch.allclose(lib_grad2, G_cut) and (grad0 == 0).all()

# %% [markdown]
# ## 3. The local and global terms
#
# With $\mathbf Z\in\mathbb R^{N\times D}$ the batch features and
# $\mathbf Z_k=\mathbf Z_{\mathcal P_k,:}$ the
# rows of the images that carry label $k$ (after label correction, notebook 01), the CLML term is
# (docs/method.md §2.3)
#
# $$
# \boxed{\;\mathcal L_{\text{CLML}}(\mathbf Z,\hat{\mathbf
# Y})=\frac{\lambda}{N}\Big(\sum_{k=1}^{C}\max\big(\Delta,\ \lVert\mathbf
# Z_k\rVert_*\big)\;-\;\lVert\mathbf Z\rVert_*\Big),\qquad \Delta=1\;}
# $$
#
# * **local** terms $\lVert\mathbf Z_k\rVert_*$: small when the images of label $k$ span few
#   directions: they pull the images of a label onto a low-dimensional subspace;
# * **global** term $-\lVert\mathbf Z\rVert_*$: rewarded when the whole batch spans many directions:
#   different labels are pushed onto different subspaces;
# * $1/N$ makes the value a per-image average; $\lambda$ is the weight against the base loss
#   (`CLMLLoss` multiplies `low_rank_loss` by it);
# * a label absent from the batch has $\mathbf Z_k$ of shape $(0,D)$, $\lVert\mathbf Z_k\rVert_*=0$,
#   and adds the constant $\max(\Delta,0)=\Delta$ (the reference's convention, kept).
#
# From scratch, one SVD per label, against the library's per-label reference, its batched version,
# and the $\lambda$-weighted `CLMLLoss`:


# %%
def scratch_low_rank(Z, Y, delta=1.0):
    """(1/N)(sum_k max(delta, ||Z_k||_*) - ||Z||_*); Z (N, D), Y (N, C) 0/1."""
    local = sum(
        max(delta, torch.linalg.svdvals(Z[Y[:, k] == 1]).sum().item()) for k in range(Y.shape[1])
    )
    return (local - torch.linalg.svdvals(Z).sum().item()) / Z.shape[0]


Z = torch.randn(12, 6, generator=g, dtype=torch.float64)  # (N, D)
Y = (torch.rand(12, 4, generator=g) < 0.4).double()  # (N, C)
Y[:, 3] = 0  # label 3 absent from the batch
lam = 0.5
clml = CLMLLoss("BCE", lambda_=lam, use_correction=False).forward_parts(
    torch.zeros(12, 4, dtype=torch.float64), Z, Y
)
print(
    f"scratch {scratch_low_rank(Z, Y):.6f}  reference {low_rank_loss_reference(Z, Y):.6f}  "
    f"batched {low_rank_loss(Z, Y):.6f}  CLMLLoss(lambda=0.5) / 0.5 {clml.low_rank / lam:.6f}"
)
assert all(
    np.isclose(scratch_low_rank(Z, Y), v.item(), rtol=1e-10)
    for v in (low_rank_loss_reference(Z, Y), low_rank_loss(Z, Y), clml.low_rank / lam)
)

# %% [markdown]
# ## 4. The floor $\Delta$
#
# **Without the floor** ($\Delta=0$) the objective is positively 1-homogeneous:
# $\mathcal L(c\mathbf Z)=c\,\mathcal L(\mathbf Z)$ for $c>0$. When every image has a label,
# $\mathcal L\ge0$ (docs/method.md §2.3), so the easiest way down is $c\to0$: shrink every feature.
# A
# network can do that for free (scale down the last layer), and the loss then only measures how
# small the features are.
#
# **With the floor**, a label whose $\lVert\mathbf Z_k\rVert_*\le\Delta$ contributes the constant
# $\Delta$: no pull. Only the global $-\lVert\mathbf Z\rVert_*$ acts on it, and it pushes outwards.
# So
# the pull stops at scale $\Delta$.
#
# Watch it on free features: gradient descent on $\mathbf Z$ alone ($N=24$, $D=8$, $C=4$, two labels
# per image, so no arrangement makes the loss exactly 0), minimising only this term, with
# $\Delta=0$ and $\Delta=1$. We track the mean per-label norm
# $\frac1C\sum_k\lVert\mathbf Z_k\rVert_*$
# (`low_rank_terms` returns the parts).


# %%
def descend(delta, steps=500, lr=0.01):
    """Gradient descent (step lr / (1 + t/100)) on free features Z (24, 8).

    Returns the mean ||Z_k||_* per step."""
    Zf = 0.3 * torch.randn(24, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    Zf.requires_grad_(True)
    Yf = torch.zeros(24, 4, dtype=torch.float64)  # (N, C)
    Yf[torch.arange(24), torch.arange(24) % 4] = 1
    Yf[torch.arange(24), (7 * torch.arange(24) + 3) % 4] = 1  # a second label per image
    label_norms = []
    for t in range(steps):
        loss, parts = low_rank_terms(Zf, Yf, delta=delta)
        (gZ,) = torch.autograd.grad(loss, Zf)
        with torch.no_grad():
            Zf -= lr / (1 + t / 100) * Zf.shape[0] * gZ  # step on N * loss
        label_norms.append(parts["label_norms"].mean().item())
    return np.array(label_norms)


# NBVAL_IGNORE_OUTPUT
# 500 descent steps carry the last bits of the CPU's float kernels into the
# end values (0.053 or 0.054, 0.998 or 1.000 on different CPUs); the assert checks the claims
runs = {d: descend(d) for d in (0.0, 1.0)}
for d, norms in runs.items():
    print(f"Delta = {d}: mean ||Z_k||_* {norms[0]:.3f} -> {norms[-1]:.3f}")
assert runs[0.0][-1] < 0.1 and 0.9 < runs[1.0][-1] < 1.2  # to ~0 without the floor, to it with

# %%
fig, ax = plt.subplots(figsize=(6, 3.5))
for d, norms in runs.items():
    ax.semilogy(norms, label=rf"$\Delta={d:g}$")
ax.axhline(1.0, color="gray", ls=":", label=r"floor $\Delta=1$")
ax.set(
    xlabel="gradient step",
    ylabel=r"mean per-label norm $\|Z_k\|_*$",
    title="Minimising the low-rank term alone on free features",
)
ax.legend()
plt.show()

# %% [markdown]
# Without the floor the features shrink towards $\mathbf 0$ (as fast as the decaying step allows);
# with $\Delta=1$ they stop where the per-label norms meet the floor. In a network the base loss
# also acts on the features, but without the floor this pull towards $\mathbf 0$ would be there at
# every step.
#
# The floor in one line: a label below it gives no gradient. Label 4 below is carried by image 0
# alone, with $\lVert\mathbf z_0\rVert=0.5<\Delta$; adding it changes the value by $\Delta/N$ and
# the
# gradient not at all (an absent label behaves the same way):

# %%
Zs = Z.clone()
Zs[0] = 0.5 * Zs[0] / Zs[0].norm()  # ||z_0|| = 0.5 < Delta
Ys = torch.cat([Y, torch.zeros(12, 1, dtype=torch.float64)], dim=1)  # (N, C + 1)
Ys[0, 4] = 1  # label 4 = {image 0}
Zs.requires_grad_(True)
v4, v = low_rank_loss(Zs, Ys), low_rank_loss(Zs, Y)
(g4,), (g,) = torch.autograd.grad(v4, Zs), torch.autograd.grad(v, Zs)
print(
    f"value rises by {(v4 - v).item():.6f} = Delta / N = {1 / 12:.6f}; gradient unchanged: "
    f"{torch.allclose(g4, g)}"
)
assert np.isclose((v4 - v).item(), 1 / 12) and torch.allclose(g4, g)

# %% [markdown]
# ## 5. All labels at once: the Gram / `eigh` trick
#
# The official code runs $C+1$ SVDs per step (one per label present, one for $\mathbf Z$), each on a
# $|\mathcal P_k|\times D$ matrix with $D=2048$. Everything can come from one $N\times N$ matrix.
#
# **Values.** With $\mathbf Z_k=\mathbf U\boldsymbol\Sigma\mathbf V^\top$, the Gram block
# $\mathbf G_k=\mathbf Z_k\mathbf Z_k^\top=\mathbf U\boldsymbol\Sigma^2\mathbf U^\top$: its
# eigenvalues are
# $\mu_r=\sigma_r^2$ and its eigenvectors are $\mathbf Q=\mathbf U$. So
#
# $$
# \lVert\mathbf Z_k\rVert_*=\sum_r\sqrt{\mu_r(\mathbf G_k)},\qquad \mathbf G_k=\mathbf G[\mathcal
# P_k,\mathcal P_k],\quad \mathbf G=\mathbf Z\mathbf Z^\top\ \text{(computed once)}.
# $$
#
# **Gradients.** From $\mathbf Z_k=\mathbf U_r\boldsymbol\Sigma_r\mathbf V_r^\top$,
# $\mathbf V_r^\top=\boldsymbol\Sigma_r^{-1}\mathbf U_r^\top\mathbf Z_k$, hence
#
# $$
# \mathbf U_r\mathbf V_r^\top=\mathbf U_r\boldsymbol\Sigma_r^{-1}\mathbf U_r^\top\mathbf
# Z_k=\mathbf M_k\mathbf Z_k,\qquad
# \mathbf M_k=\mathbf Q_r\operatorname{diag}(\mu_r^{-1/2})\mathbf Q_r^\top\ \ (|\mathcal
# P_k|\times|\mathcal P_k|).
# $$
#
# With $\mathbf E_k$ the $N\times|\mathcal P_k|$ matrix that scatters rows $\mathcal P_k$ back into
# the
# batch ($\mathbf Z_k=\mathbf E_k^\top\mathbf Z$), the gradient of docs/method.md §2.5 becomes
#
# $$
# \frac{\partial\mathcal L}{\partial\mathbf Z}=\frac1N\Big(\sum_{k:\,\lVert\mathbf
# Z_k\rVert_*>\Delta}\mathbf E_k\mathbf M_k\mathbf E_k^\top-\mathbf M\Big)\mathbf
# Z=\frac1N\,\mathbf B\mathbf Z ,
# $$
#
# one $N\times N$ matrix $\mathbf B$ ("scattered" $\mathbf M_k$'s minus the global $\mathbf M$)
# times
# $\mathbf Z$. $\mathbf B$ is symmetric, so with $\mathbf B$ held constant
# $\nabla_{\mathbf Z}\,\tfrac{1}{2N}\operatorname{tr}(\mathbf Z^\top\mathbf B\mathbf
# Z)=\tfrac1N\mathbf B\mathbf Z$:
# this **surrogate** lets autograd carry the gradient (the library carries $\mathbf B\mathbf Z/N$
# with a small autograd `Function` instead: step 7 of the appendix). One precision point: squaring
# singular values squares the condition number, so the
# Gram route runs in float64 and uses a relative cut-off ($\sqrt{\mu}$ noise is
# $\sim10^{-8}\sigma_1$ in float64).
#
# From scratch, a plain loop over labels using Gram blocks:


# %%
def gram_low_rank(Z, Y, delta=1.0, eps=1e-6, rel_eps=1e-6):
    """Value, gradient B Z / N and B (N, N) of the low-rank term from one Gram matrix."""

    def norm_and_M(Gk):  # Gk (n, n) PSD -> ||Z_k||_*, M_k (n, n)
        mu, Q = torch.linalg.eigh(Gk)  # (n,), (n, n)
        s = mu.clamp_min(0).sqrt()  # singular values of Z_k
        keep = s > max(eps, rel_eps * s.max().item())
        return s[keep].sum(), Q[:, keep] @ torch.diag(1 / s[keep]) @ Q[:, keep].T

    G = Z @ Z.T  # (N, N), computed once
    value, M = norm_and_M(G)
    value, B = -value, -M  # global term
    for k in range(Y.shape[1]):
        P = Y[:, k].nonzero().flatten()  # P_k
        nk, Mk = norm_and_M(G[P][:, P]) if len(P) else (0.0, None)
        value = value + max(delta, float(nk))
        if nk > delta:  # active label: E_k M_k E_k^T
            B[P.unsqueeze(1), P] += Mk
    return value / Z.shape[0], B @ Z / Z.shape[0], B


# %% [markdown]
# A batch with the awkward cases (an absent label, a single-image label, labels below and above
# the floor), in float64, against the per-label SVD reference (`low_rank_loss_reference`, value and
# autograd gradient) and then the library's batched `low_rank_loss`:

# %%
g = torch.Generator().manual_seed(2)
N, D, C = 64, 128, 10
Z = torch.relu(torch.randn(N, D, generator=g, dtype=torch.float64))  # (N, D) post-ReLU features
Y = (torch.rand(N, C, generator=g) < 0.25).double()  # (N, C)
Y[:, 0] = 0  # absent label
Y[:, 1] = 0
Y[5, 1] = 1  # single-image label
value, grad, B = gram_low_rank(Z, Y)
results = {}
for name, fn in [
    ("per-label SVD reference", low_rank_loss_reference),
    ("batched low_rank_loss", low_rank_loss),
]:
    Z_ = Z.clone().requires_grad_(True)
    v = fn(Z_, Y)
    (gz,) = torch.autograd.grad(v, Z_)
    results[name] = (
        np.isclose(value, v.item(), rtol=1e-10),
        torch.allclose(grad, gz, rtol=1e-7, atol=1e-10),
    )
    print(f"scratch Gram == {name:24s}: value {results[name][0]}, gradient {results[name][1]}")
assert all(all(r) for r in results.values())

# %% [markdown]
# And the surrogate: autograd of $\tfrac1{2N}\operatorname{tr}(\mathbf Z^\top\mathbf B\mathbf Z)$
# with $\mathbf B$
# fixed gives exactly $\mathbf B\mathbf Z/N$:

# %%
Z_ = Z.clone().requires_grad_(True)
surrogate = 0.5 * (Z_ * (B @ Z_)).sum() / N  # (1/2N) tr(Z^T B Z)
(g_sur,) = torch.autograd.grad(surrogate, Z_)
print(
    "B symmetric:",
    torch.allclose(B, B.T),
    "| grad of surrogate == B Z / N:",
    torch.allclose(g_sur, grad),
)
assert torch.allclose(B, B.T) and torch.allclose(g_sur, grad)

# %% [markdown]
# **How the library batches it.** The loop above runs one `eigh` per label.
# `clml_lib.losses.nuclear.low_rank_terms` does the same mathematics without a Python loop over
# labels: it groups the labels by size, gathers their Gram blocks into one padded tensor per group,
# runs one batched `eigh` per group (plus one for the global $\mathbf Z$), and scatters the
# $\mathbf M_k$ of a group into $\mathbf B$ with one indexed add. That is engineering, not
# multi-label learning: the step-by-step rebuild is in the appendix at the end of this notebook,
# [Under the hood](#appendix-under-the-hood-the-librarys-batched-code). Its
# result is all this lesson needs: values and gradients equal to the loop above, at a fraction of
# the cost.

# %% [markdown]
# **Timing.** The reference's shape: $N=64$, $C=80$, $D=2048$, float32 post-ReLU features, and
# COCO-like label frequencies ("person" in 45% of images, the others falling off as a power law,
# about 2.7 labels per image). Forward plus backward, median of 5 runs (numbers vary by machine):

# %%
# NBVAL_IGNORE_OUTPUT
g = torch.Generator().manual_seed(3)
freq = 0.45 * torch.arange(1, 81, dtype=torch.float32) ** -0.9  # (C,) COCO-like label frequencies
Yc = (torch.rand(64, 80, generator=g) < freq).float()  # (N, C)
Zc = torch.relu(torch.randn(64, 2048, generator=g))  # (N, D)


def fwd_bwd_ms(fn):
    times = []
    for _ in range(5):
        Z_ = Zc.clone().requires_grad_(True)
        t0 = time.perf_counter()
        fn(Z_, Yc).backward()
        times.append(1000 * (time.perf_counter() - t0))
    return float(np.median(times))


ms = {
    "per-label SVD (reference)": fwd_bwd_ms(low_rank_loss_reference),
    "batched Gram/eigh (low_rank_loss)": fwd_bwd_ms(low_rank_loss),
}
print(
    f"labels per image {Yc.sum(1).mean():.2f}, labels present in the batch "
    f"{(Yc.sum(0) > 0).sum().item()} / 80"
)
print(
    pd.DataFrame(
        {
            "ms per step": ms,
            "speed-up": {k: ms["per-label SVD (reference)"] / v for k, v in ms.items()},
        }
    )
    .round(1)
    .to_string()
)

# %% [markdown]
# The Gram route does one $N\times N$ product and small `eigh`s instead of $C+1$ SVDs of
# $|\mathcal P_k|\times2048$ matrices; the library also groups labels by size and runs one batched
# `eigh` per group. Values and gradients are the same to float64 rounding.
#
# ## 6. Spectra of real embeddings, before and after training
#
# What does the term do to a network's features? We measure the spread of singular values with
# the **effective rank** (Roy & Vetterli, 2007)
#
# $$
# \operatorname{erank}(\mathbf A)=\exp\Big(-\sum_r p_r\log p_r\Big),\qquad
# p_r=\frac{\sigma_r}{\sum_{r'}\sigma_{r'}} ,
# $$
#
# the exponential of the entropy of the normalised singular values: $r$ for $r$ equal singular
# values, 1 for a rank-one matrix, and blind to the overall scale.


# %%
def effective_rank(A):
    """exp of the entropy of the normalised singular values of A (n, d)."""
    p = torch.linalg.svdvals(A)
    p = p[p > 0] / p.sum()
    return torch.exp(-(p * p.log()).sum()).item()


print(
    f"erank(I_5) = {effective_rank(torch.eye(5)):.4f}, erank(rank one) = "
    f"{effective_rank(torch.ones(6, 4)):.4f}, erank(diag(1, 1e-9)) = "
    f"{effective_rank(torch.diag(torch.tensor([1.0, 1e-9]))):.4f}"
)

# %% [markdown]
# **Two short teaching runs** through the training engine (`clml_lib.train.fit`): the embedded
# teaching set (12 shape classes, 32 px images, notebook 00), the tiny CNN ($D=96$), 6 epochs, the
# BCE base loss, without and with the CLML term. Two choices, both for this demonstration only:
#
# * `setting='single'`: one observed positive per training image. Each image then sits in exactly
#   one label set $\mathcal P_k$, the regime of the OLÉ theorem (docs/method.md §2.3): the loss is
#   $0$
#   exactly when the label subspaces are mutually orthogonal, so low local rank and high global
#   rank are what the term asks for. With several labels per image, an image is pulled by each of
#   its labels and pushed once (exercise 2).
# * $\lambda=10$: at $\lambda=1$ a 6-epoch run barely moves the spectra.
#
# `verbose=False`: each run prints one summary line (not compared by nbval: it holds timings).

# %%
# NBVAL_IGNORE_OUTPUT
from clml_lib.paths import resolve
from clml_lib.train import TrainConfig, fit

common = dict(
    dataset="teaching",
    setting="single",
    backbone="tiny_cnn",
    weights_path="",  # random initialisation
    num_train_images=0,  # the whole embedded training set
    image_size=32,
    epochs=6,
    stop_epoch=-1,
    lr=1e-3,
    ema_decay=0.99,
    batch_size=64,
    augment=False,
    base_loss="BCE",
    lambda_=10.0,
    seed=0,
    progress=False,
    verbose=False,
    resume=False,
)
run_dirs = {
    "BCE": resolve("runs/notebooks/03_low_rank_terms/bce"),
    "BCE + CLML": resolve("runs/notebooks/03_low_rank_terms/bce_clml"),
}
summaries = {
    name: fit(TrainConfig(**common, use_clml=(name != "BCE"), out_dir=str(d)))
    for name, d in run_dirs.items()
}
for name, s in summaries.items():
    print(
        f"{name:10s} test mAP {s['test_mAP']:.2f} (epoch {s['selected_epoch']}, "
        f"{s['selected_model']})"
    )

# %% [markdown]
# Features of the 1000 test images: from a freshly initialised network (same seed as the runs),
# and from each run's `checkpoint.pt` (key `"model"`: the raw weights the loss acted on; `"ema"`
# holds the averaged ones). The checkpoint also stores RNG states, so it is read with
# `load_checkpoint` rather than as a plain weights file.

# %%
from clml_lib.data import TeachingMultiLabel
from clml_lib.models import build_model
from clml_lib.train.checkpoint import load_checkpoint

test = TeachingMultiLabel("test", image_size=32, seed=0)
X = torch.stack([test[i][0] for i in range(len(test))])  # (1000, 3, 32, 32)
Y_test = test.labels  # (1000, C) full labels


def test_features(checkpoint=None):
    torch.manual_seed(0)
    model = build_model("tiny_cnn", len(test.classes), "")
    if checkpoint is not None:
        model.load_state_dict(load_checkpoint(checkpoint)["model"])
    with torch.no_grad():
        return model.eval()(X)[1].double()  # (1000, D)


feats = {
    "init": test_features(),
    **{n: test_features(d / "checkpoint.pt") for n, d in run_dirs.items()},
}
print({n: tuple(z.shape) for n, z in feats.items()})

# %% [markdown]
# The loss sees batches of $N=64$, so we measure as it does: the test images in batches of 64;
# per batch, the normalised spectrum $\sigma_r/\sum\sigma$ of $\mathbf Z$ and of every
# $\mathbf Z_k$ with at least two images (test labels are the full labels), and their effective
# ranks; then averages over batches (and labels). A label set of $n_k$ images has only $n_k$
# singular values, so the per-label curve at index $r$ averages the sets with $n_k\ge r$ and is
# drawn while at least half of the sets count.


# %%
def batch_spectra(Z, Y, N=64):
    """Mean normalised global / per-label spectra, share of label sets reaching each r,
    mean eranks."""
    glob, loc, er_g, er_l = [], [], [], []
    for b in range(0, Z.shape[0] - N + 1, N):
        Zb, Yb = Z[b : b + N], Y[b : b + N]  # (N, D), (N, C)
        s = torch.linalg.svdvals(Zb)
        glob.append(s / s.sum())
        er_g.append(effective_rank(Zb))
        for k in (Yb.sum(0) >= 2).nonzero().flatten():
            sk = torch.linalg.svdvals(Zb[Yb[:, k] == 1])
            loc.append(torch.nn.functional.pad(sk / sk.sum(), (0, N - len(sk)), value=float("nan")))
            er_l.append(effective_rank(Zb[Yb[:, k] == 1]))
    loc = torch.stack(loc)  # (sets, N), NaN beyond n_k
    return (
        torch.stack(glob).mean(0),
        loc.nanmean(0),
        (~loc.isnan()).double().mean(0),
        np.mean(er_g),
        np.mean(er_l),
    )


spectra = {name: batch_spectra(Z, Y_test) for name, Z in feats.items()}

# %%
# NBVAL_IGNORE_OUTPUT
table = pd.DataFrame(
    {
        name: {
            "global erank": sp[3],
            "mean per-label erank": sp[4],
            "per-label / global": sp[4] / sp[3],
        }
        for name, sp in spectra.items()
    }
).T
print(table.round(3).to_string())
clml_row, bce_row = table.loc["BCE + CLML"], table.loc["BCE"]
assert table.loc["init", "global erank"] < bce_row["global erank"] < clml_row["global erank"]
assert clml_row["per-label / global"] < bce_row["per-label / global"]  # labels apart
assert clml_row["mean per-label erank"] >= bce_row["mean per-label erank"]  # not lower, absolute

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
for name, (g_sp, l_sp, share, er_g, er_l) in spectra.items():
    axes[0].semilogy(np.arange(1, 65), g_sp.numpy(), label=f"{name} (erank {er_g:.1f})")
    r = int((share >= 0.5).sum())  # indices reached by at least half of the label sets
    axes[1].semilogy(np.arange(1, r + 1), l_sp[:r].numpy(), label=f"{name} (erank {er_l:.1f})")
axes[0].set(
    title=r"global: $\mathbf{Z}$ of a test batch ($N=64$)",
    xlabel="index $r$",
    ylabel=r"normalised singular value $\sigma_r/\sum\sigma$",
)
axes[1].set(
    title=r"per label: $\mathbf{Z}_k$ in the same batches (mean over labels)", xlabel="index $r$"
)
for ax in axes:
    ax.legend(fontsize=8)
plt.tight_layout()
plt.show()
er = {n: (sp[3], sp[4]) for n, sp in spectra.items()}
assert (
    er["BCE + CLML"][0] > er["BCE"][0]
    and er["BCE + CLML"][1] / er["BCE + CLML"][0] < er["BCE"][1] / er["BCE"][0]
)

# %% [markdown]
# **Reading the figure.** At initialisation one direction dominates the features (post-ReLU
# vectors share a large common component: the lowest effective ranks of the table). Training
# spreads them out. With the CLML term the global
# spectrum of a batch is flatter than with BCE alone: the global effective rank rises (the
# table above). The per-label effective rank rises less, so the *share* of the batch's directions
# that one label occupies falls (the per-label / global ratio): the labels are pushed apart into
# their own subspaces, which stay comparatively low-dimensional. That is what the boxed objective
# asks for, in relative terms; in absolute terms the per-label rank did not fall in this short
# run (the cell asserts all three comparisons). One seed and 6 epochs: the mAP difference of the
# two runs is not evidence about CLML (notebooks 04 and 05 train properly,
# over seeds).
#
# ## Summary
#
# * $\lVert\mathbf A\rVert_*=\sum_r\sigma_r$; its subgradient $\mathbf U_r\mathbf V_r^\top$ (the
#   $\mathbf W=\mathbf 0$ element)
#   matches finite differences and `gradcheck` where the norm is smooth; the cut-off $\epsilon$
#   drops the arbitrary directions of numerically zero singular values, and the gradient at
#   $\mathbf 0$ is $\mathbf 0$.
# * $\mathcal L_{\text{CLML}}=\frac{\lambda}{N}\big(\sum_k\max(\Delta,\lVert\mathbf
#   Z_k\rVert_*)-\lVert\mathbf Z\rVert_*\big)$:
#   per-label pulls, a global push. Absent labels add the constant $\Delta$.
# * Without $\Delta$ the objective is 1-homogeneous and shrinks the features to $\mathbf 0$; the
#   floor stops the pull at $\lVert\mathbf Z_k\rVert_*=\Delta$.
# * One Gram matrix $\mathbf G=\mathbf Z\mathbf Z^\top$ gives every norm
#   ($\sqrt{\operatorname{eig}(\mathbf G[\mathcal P_k,\mathcal P_k])}$)
#   and the whole gradient $\mathbf B\mathbf Z/N$; faster than $C+1$ SVDs at the reference's
#   shape (the timing cell prints the ratio on this machine), and identical in value and gradient.
# * The library batches it further (appendix): labels grouped by size (one member; 2-4; 5-16;
#   17-64; ...), one batched `eigh` per group plus one for $\mathbf Z$, one indexed add per group
#   into $\mathbf B$. Rebuilt step by step, it equals `low_rank_terms` in value and gradient.
# * On single-positive teaching data, training with the term ($\lambda=10$, 6 epochs) raises the
#   global effective rank of a batch and lowers the share of it that one label occupies.
#
# ## Exercises
#
# Each exercise has a checker: replace `None` by your answer and run the cell. Written solutions
# and code: `notebooks/solutions/ch03.md` and `ch03.py`.
#
# 1. For a label carried by one image, $\mathbf Z_k=\mathbf z_i^\top$. Show that its subgradient is
#    $\mathbf z_i^\top/\lVert\mathbf z_i\rVert$ (and 0 at $\mathbf z_i=0$, the library's choice).
#    Give it as a function `f(z)` of a vector `z` of shape `(D,)`.

# %%
from clml_lib.exercises import ch03

answer_1 = None  # a function f(z) -> the subgradient, shape (D,)
_ = ch03.check_single_row_subgradient(answer_1)

# %% [markdown]
# 2. Section 6 trains with one observed label per image (`setting='single'`, $\lambda=10$).
#    Before re-running it with `setting='full'`, measure from the data how many labels an image
#    of the teaching training set carries on average (full labels). Then predict what happens to
#    the global effective rank with about that many pulls (one per label) and one push per image.

# %%
assert common["setting"] == "single" and common["lambda_"] == 10.0  # section 6, as stated above
answer_2 = None  # labels per image (float)
_ = ch03.check_labels_per_image(answer_2)

# %% [markdown]
# 3. For the batch `Z, Y = clml_lib.exercises.ch03.bound_batch()` (every image carries a label),
#    compute $\lVert\mathbf Z\rVert_*$, $\lVert\operatorname{diag}(m)\mathbf Z\rVert_*$ and
#    $\sum_k\lVert\mathbf Z_k\rVert_*$, with $m_i$ the number of labels of image $i$, and prove the
#    chain
#    $\lVert\mathbf Z\rVert_*\le\lVert\operatorname{diag}(m)\mathbf Z\rVert_*\le\sum_k\lVert\mathbf
#    Z_k\rVert_*$
#    of docs/method.md §2.3. Answer as a tuple `(a, b, c)`.

# %%
answer_3 = None  # (||Z||_*, ||diag(m) Z||_*, sum_k ||Z_k||_*)
_ = ch03.check_bound_chain(answer_3)

# %% [markdown]
# 4. A batch holds eight labels with $n=1,2,3,5,9,17,33,64$ members. Following step 3 of the
#    appendix, to which size is each label's Gram block padded? Answer as `{n: size}`. How many
#    batched `eigh` calls does the batch need, and why does zero padding change neither the
#    values nor the gradients?

# %%
answer_4 = None  # {1: ..., 2: ..., ...}
_ = ch03.check_group_sizes(answer_4)


# %% [markdown]
# ## Appendix. Under the hood: the library's batched code
#
# Optional reading, for those who want to read `clml_lib/losses/nuclear.py`: index tricks, not
# multi-label learning (section 5 links here). Section 5's loop runs one `eigh` per label.
# `clml_lib.losses.nuclear.low_rank_terms` does the same mathematics without a Python loop over
# labels: it groups the labels by size, gathers their Gram blocks into one padded tensor per
# group, runs one batched `eigh` per group (plus one for the global $\mathbf Z$), and scatters
# the $\mathbf M_k$ of a group into $\mathbf B$ with one indexed add. We rebuild it here in the
# order of the library's code, one step per cell, each step checked against the maths. Section
# 5's batch (`Z`, `Y` and its `B`) is reused in step 7. A small
# batch first, to look at the index tensors: $N=6$ images, $C=3$ labels.
#
# **Step 1: one Gram matrix, with a zero row and column for padding.**
# $\mathbf G=\mathbf Z\mathbf Z^\top$ is computed once in float64, inside an $(N+1)\times(N+1)$
# matrix whose last row and column (index $N$) are zero. Any index that points at $N$ reads a
# zero: that is how blocks of different sizes are padded to a common size.


# %%
def padded_gram(Z):
    """G = Z Z^T in float64, inside an (N+1, N+1) matrix whose row/column N are zero."""
    N = Z.shape[0]
    Gp = torch.zeros(N + 1, N + 1, dtype=torch.float64)  # (N+1, N+1)
    Gp[:N, :N] = Z.double() @ Z.double().T
    return Gp


g = torch.Generator().manual_seed(7)
Zs = torch.relu(torch.randn(6, 4, generator=g, dtype=torch.float64))  # (6, 4)
Ys = torch.tensor([[1, 0, 0], [1, 1, 0], [0, 1, 0], [1, 1, 0], [0, 0, 0], [1, 0, 0]]).bool()
Gp_s = padded_gram(Zs)
print("padding row and column are zero:", bool((Gp_s[6] == 0).all() and (Gp_s[:, 6] == 0).all()))

# %% [markdown]
# **Step 2: member lists.** For label $k$, the members $\mathcal P_k$ are listed in order in row
# $k$ of a $(C, N+1)$ integer tensor, padded with $N$. The slot of image $i$ in its label's list
# is the running count `cumsum - 1` of that label's column; non-members are all sent to slot $N$,
# which is never read (a label has at most $N$ members).


# %%
def member_lists(Y):
    """members (C, N+1): row k lists the images of label k in order, then the pad index N."""
    N, C = Y.shape
    Yl = Y.T.long()  # (C, N)
    pos = torch.where(Y.T, Yl.cumsum(1) - 1, N)  # (C, N) slot of image i in label k's list
    members = torch.full((C, N + 1), N, dtype=torch.long)  # (C, N+1) filled with the pad index
    members.scatter_(1, pos, torch.arange(N).expand(C, N))  # non-members write into slot N
    members[:, N] = N  # (slot N is never read; reset for a clean display)
    return members, Yl.sum(1)  # (C, N+1), counts (C,)


members_s, counts_s = member_lists(Ys)
print("members (pad = 6):\n", members_s)
print("counts:", counts_s.tolist())
for k in range(3):
    assert members_s[k, : counts_s[k]].tolist() == Ys[:, k].nonzero().flatten().tolist()

# %% [markdown]
# **Step 3: size groups.** Labels are grouped by their member count. Labels with one member form
# their own group, handled in closed form ($\lVert\mathbf z\rVert$, no `eigh`); the others are
# grouped by the next power of four of their count (2-4, 5-16, 17-64, ...), and each group is
# padded only to the largest count in it. A batch of $N=64$ images thus needs at most three
# batched `eigh` calls for its labels (2-4, 5-16, 17-64 members), plus one for the global
# $\mathbf Z$, whatever $C$ is: at these sizes the cost of a call, not its arithmetic, dominates.
# Absent labels ($n=0$) get no group.


# %%
def size_groups(counts):
    """[(padded size, [label ids])]: size 1 alone, then counts grouped by next power of four."""
    groups = {}
    for k, n in enumerate(counts):
        if n > 0:
            key = 0 if n == 1 else ((int(n) - 1).bit_length() + 1) // 2  # 2-4: 1, 5-16: 2, ...
            groups.setdefault(key, []).append(k)
    return [(max(counts[k] for k in ks), ks) for _, ks in sorted(groups.items())]


print("counts", counts_s.tolist(), "-> groups", size_groups(counts_s.tolist()))
print("counts [1, 2, 3, 5, 9, 17, 40, 0] -> groups", size_groups([1, 2, 3, 5, 9, 17, 40, 0]))
# worst case for N = 64: labels of every size 1..64
label_calls = sum(size > 1 for size, _ in size_groups(list(range(1, 65))))
print(f"labels of every size 1..64: {label_calls} batched eigh calls for the labels + 1 for Z")
assert label_calls == 3

# %% [markdown]
# **Step 4: compacted Gram blocks.** For a group of $K$ labels padded to size $n$, the first $n$
# entries of each member list index rows and columns of the padded Gram matrix at once:
# `Gp[rows, cols]` with `rows = members[ks, :n, None]` and `cols = rows.mT` has shape
# $(K,n,n)$ and holds $\mathbf G_k=\mathbf G[\mathcal P_k,\mathcal P_k]$ in its top-left corner and
# zeros elsewhere (every pad index reads the zero row/column). Zero padding only adds zero
# eigenvalues, which fall under the cut-off.

# %%
size, ks = size_groups(counts_s.tolist())[-1]  # the group of the largest labels
rows = members_s[torch.tensor(ks), :size].unsqueeze(-1)  # (K, size, 1) member rows, pad N
cols = rows.mT  # (K, 1, size)
Gk = Gp_s[rows, cols]  # (K, size, size)
for b, k in enumerate(ks):
    n = int(counts_s[k])
    P = Ys[:, k].nonzero().flatten()
    assert torch.equal(Gk[b, :n, :n], Gp_s[P][:, P])
    assert not Gk[b, n:].any() and not Gk[b, :, n:].any()
print(f"group padded to {size}, labels {ks}: blocks {tuple(Gk.shape)}; top-left G[P_k, P_k]")

# %% [markdown]
# **Step 5: one batched `eigh` per group.** From
# $\mathbf G_k=\mathbf Q\operatorname{diag}(\mu)\mathbf Q^\top$:
# $\lVert\mathbf Z_k\rVert_*=\sum_r\sqrt{\mu_r}$ over the eigenvalues above the cut-off
# $\max(\epsilon,\epsilon_{\text{rel}}\sqrt{\mu_{\max}})$, and
# $\mathbf M_k=\mathbf Q_r\operatorname{diag}(\mu_r^{-1/2})\mathbf Q_r^\top$. The padded rows and
# columns of $\mathbf M_k$ are zero, because the kept eigenvectors live in the top-left corner.
# Writing $1/s$ as `1 / where(keep, s, inf)` gives 0 under the cut-off without a division by 0.


# %%
def norms_and_M(G, eps=1e-6, rel_eps=1e-6):
    """Batched PSD blocks (K, n, n) -> nuclear norms (K,) and M (K, n, n), as the library."""
    if G.shape[-1] == 1:  # closed form for single-member labels: ||z|| and 1 / ||z||
        s = G.clamp_min(0).sqrt()  # (K, 1, 1)
        inv = torch.where(s > eps, s, torch.inf).reciprocal()  # (K, 1, 1)
        return s.flatten() * (inv.flatten() > 0), inv
    mu, Q = torch.linalg.eigh(G)  # (K, n), (K, n, n), ascending
    s = mu.clamp_min(0).sqrt()  # (K, n) singular values of Z_k (and zeros for the padding)
    keep = s > (rel_eps * s[..., -1:]).clamp_min(eps)  # (K, n)
    inv = torch.where(keep, s, torch.inf).reciprocal()  # (K, n) 1/s, 0 under the cut-off
    return (s * keep).sum(-1), (Q * inv.unsqueeze(-2)) @ Q.mT


norms, Mk = norms_and_M(Gk)
for b, k in enumerate(ks):
    n = int(counts_s[k])
    assert np.isclose(norms[b].item(), torch.linalg.svdvals(Zs[Ys[:, k]]).sum().item(), rtol=1e-10)
    assert Mk[b, n:].abs().sum() < 1e-12 and Mk[b, :, n:].abs().sum() < 1e-12
print("group norms == per-label SVD:", [round(v, 6) for v in norms.tolist()], "| M_k padding 0")

# %% [markdown]
# **Step 6: the scatter into $\mathbf B$.** Entry $(a,b)$ of block $k$ belongs at
# $(\mathcal P_k[a],\mathcal P_k[b])$ of $\mathbf B$, which is exactly where the index pair
# `(rows, cols)` of step 4 points. One `index_put_(..., accumulate=True)` per group adds its
# active $\mathbf M_k$ (labels strictly above the floor $\Delta$) into a padded
# $(N+1)\times(N+1)$ matrix, summing where labels share images; padding entries land in row or
# column $N$, which is cut off at the end. Then the global $\mathbf M$ is subtracted and $1/N$
# applied:
# $\mathbf B=\frac1N\big(\sum_{k\ \text{active}}\mathbf E_k\mathbf M_k\mathbf E_k^\top-\mathbf
# M\big)$
# (the library folds $1/N$ into $\mathbf B$; the loop above kept it apart).


# %%
def grouped_B(Z, Y, delta=1.0):
    """Value and B (N, N) of the low-rank term, the library's way; B includes the 1/N."""
    N = Z.shape[0]
    Gp = padded_gram(Z)
    g_norm, M_glob = norms_and_M(Gp[:N, :N].unsqueeze(0))  # (1,), (1, N, N)
    members, counts = member_lists(Y.bool())
    label_norms = torch.zeros(Y.shape[1], dtype=torch.float64)  # (C,), 0 for absent labels
    Bp = torch.zeros(N + 1, N + 1, dtype=torch.float64)  # padded B
    for size, ks in size_groups(counts.tolist()):
        rows = members[torch.tensor(ks), :size].unsqueeze(-1)  # (K, size, 1), padded with N
        cols = rows.mT  # (K, 1, size)
        norms, Mk = norms_and_M(Gp[rows, cols])  # (K,), (K, size, size)
        label_norms[ks] = norms
        on = norms > delta  # (K,) active labels
        Bp.index_put_((rows, cols), Mk * on.view(-1, 1, 1), accumulate=True)  # scatter
    B = (Bp[:N, :N] - M_glob[0]) / N  # drop the padding row/column, subtract M, apply 1/N
    value = (label_norms.clamp(min=delta).sum() - g_norm[0]) / N  # absent labels: delta
    return value, B


value_s, B_s = grouped_B(Zs, Ys.double())
_, _, B_loop = gram_low_rank(Zs, Ys.double())
same = torch.allclose(6 * B_s, B_loop, atol=1e-12)  # the loop's B has no 1/N (N = 6)
print("small batch: N x B from the groups == B from the per-label loop:", same)
assert same

# %% [markdown]
# **Step 7: the gradient carrier.** The library forms $\mathbf W=\mathbf B\mathbf Z$ once (no
# gradient tracked) and returns the value through a small autograd `Function`:
# `forward(Z, value, W)` returns `value`, `backward(grad_output)` returns `grad_output * W` for
# $\mathbf Z$. The value is the true objective, the gradient is the subgradient
# $\mathbf B\mathbf Z$, and the chain rule is kept: a loss scale or an outer weight arriving as
# `grad_output` multiplies it (the defect of the official backward, notebook 06, cannot happen).
# On the $N=64$ batch with an absent label and a single-image label, our rebuild against the
# library's `low_rank_terms`, value and gradient, with an outer factor 3:


# %%
class WithGradient(torch.autograd.Function):
    """forward(Z, value, W) -> value; backward -> grad_output * W for Z."""

    @staticmethod
    def forward(ctx, Z, value, W):
        ctx.save_for_backward(W)
        return value.clone()

    @staticmethod
    def backward(ctx, grad_output):
        (W,) = ctx.saved_tensors
        return grad_output * W, None, None


value_b, B_b = grouped_B(Z, Y)
Z_ = Z.clone().requires_grad_(True)
ours = WithGradient.apply(Z_, value_b, B_b @ Z)
(our_grad,) = torch.autograd.grad(3.0 * ours, Z_)
Z_ = Z.clone().requires_grad_(True)
lib_value, lib_parts = low_rank_terms(Z_, Y)
(lib_grad,) = torch.autograd.grad(3.0 * lib_value, Z_)
ok = [
    bool(np.isclose(ours.item(), lib_value.item(), rtol=1e-10)),
    torch.allclose(our_grad, lib_grad, rtol=1e-7, atol=1e-10),
    torch.allclose(N * B_b, B, atol=1e-10),
]
print(f"groups (padded sizes): {[s_ for s_, _ in size_groups(Y.sum(0).long().tolist())]}")
print(f"value, gradient (x3) equal to the library; N x B equal to the loop's B: {ok}")
assert all(ok)
