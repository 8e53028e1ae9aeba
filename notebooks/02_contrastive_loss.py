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
# # 02 · The contrastive loss: per-label positives and negatives, and why the nuclear norm is one
# too
#
# **What you will learn**
#
# 1. Why plain SupCon ("positives share a label") does not carry over to multi-label images, and
#    why missing labels poison the *negatives* of a contrastive loss.
# 2. The per-label reading of the paper (docs/method.md §2.2): for an anchor $i$ and each of its
#    labels
#    $k$, the positives $\mathcal P_k\setminus\{i\}$ and the negatives $\mathcal N_k$.
# 3. `clml_lib.losses.label_contrastive_loss`, built three times: an explicit loop over
#    (anchor, label, positive) in float64, a vectorised version with masks, and the library call
#    (value and gradient asserted equal).
# 4. The pull and the push on an anchor, and what a few gradient steps do to a 2-D toy embedding.
# 5. Why the nuclear-norm objective of the official code (docs/method.md §2.3) is a contrastive
#    loss too:
#    the per-label low-rank term pulls a label's images onto a line, the global high-rank term
#    pushes labels apart, and at the optimum the label subspaces are **orthogonal** (the OLÉ
#    theorem), shown on a few 3-D points.
#
# **Prerequisites**: `01_false_negative_mining` (label correction, $\hat{\mathbf Y}$); the
# softmax; what a singular value is.
#
# **Runs in** about 20–50 s on 2 CPU cores; only tiny tensors, no training (the measured time,
# date and machine load: notebooks/run_times.json).

# %%
from clml_lib.nb import setup_notebook

setup_notebook(seed=0, threads=1)  # tiny tensors: one thread is fastest, also on a busy machine

import math

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from scipy.sparse.csgraph import connected_components

from clml_lib.data.teaching import TeachingMultiLabel
from clml_lib.losses import label_contrastive_loss, low_rank_loss

# %% [markdown]
# ## 1. SupCon, the single-label starting point
#
# Supervised contrastive learning (Khosla et al. 2020) takes L2-normalised embeddings
# $\tilde{\mathbf z}_i=\mathbf z_i/\lVert\mathbf z_i\rVert$, similarities
# $a_{ij}=\tilde{\mathbf z}_i^\top\tilde{\mathbf z}_j/T$ with a temperature $T$, and for every
# anchor $i$ with class $y_i$ the positives $P(i)=\{j\ne i: y_j=y_i\}$:
#
# $$
# \ell_i=-\frac{1}{|P(i)|}\sum_{p\in P(i)}\log\frac{\exp(a_{ip})}{\sum_{j\ne i}\exp(a_{ij})}.
# $$
#
# Every other image of the batch is in the denominator; those of another class are the
# negatives. The loss pulls $\tilde{\mathbf z}_i$ towards its positives and pushes it from the rest.
#
# ## 2. Multi-label: "shares a label" is not a class
#
# The first idea for multi-label images is to call $j$ a positive of $i$ when they share at least
# one label, $\mathbf y_i^\top\mathbf y_j>0$. Two things go wrong:
#
# * the relation is **not transitive**: an image with {star, crescent} is a positive of a {star}
#   image and of a {crescent} image, which are negatives of each other; one embedding per image
#   is pulled towards both, and the loss does not say *which* label each pull is about;
# * in a realistic batch the "shares a label" graph is **connected**: through chains of
#   positives, every image is pulled towards every other, and the label structure is lost.
#
# Let us count on a batch of 64 images of the teaching set (full labels, 12 classes).

# %%
batch = TeachingMultiLabel("train", num_images=64, seed=0)
Y_batch = batch.labels.double()  # (64, 12) full labels
share = (Y_batch @ Y_batch.T > 0) & ~torch.eye(64, dtype=torch.bool)  # (64, 64) shares >= 1 label
n_comp, _ = connected_components(share.numpy(), directed=False)
print(f"labels per image: {Y_batch.sum(1).mean():.2f}")
print(f"pairs that share at least one label: {share.double().mean():.3f}")
print(f"connected components of the 'shares a label' graph: {n_comp}")

# %% [markdown]
# A large share of all pairs (printed above) are "positives", and the batch is a single
# connected component: SupCon with "any shared label" positives has no stable clusters to form.
#
# ## 3. Per-label positives and negatives of an anchor (docs/method.md §2.2)
#
# The paper's abstract generates positives and negatives **for each semantic label of an
# anchor**. With the corrected labels $\hat{\mathbf Y}$ of notebook 01, for an anchor $i$ and a
# label $k$ it carries ($\hat y_{ik}=1$):
#
# $$
# \text{positives}\ \ \mathcal P_k\setminus\{i\},\quad \mathcal P_k=\{j:\hat y_{jk}=1\};\qquad
# \text{negatives}\ \ \mathcal N_k=\{j:\hat y_{jk}=0\}.
# $$
#
# So one image is a positive of the anchor *for label $k$* and may be a negative *for label $k'$*.
# A toy batch of six images and three labels:

# %%
names = ["A", "B", "C"]
Y_toy = torch.tensor(
    [[1, 1, 0], [1, 0, 0], [0, 1, 0], [0, 1, 1], [0, 0, 1], [1, 0, 1]], dtype=torch.float64
)  # (6, 3)


def sets(Y, i):
    """Per-label positives and negatives of anchor i (as index lists)."""
    out = {}
    for k in range(Y.shape[1]):
        if Y[i, k] == 1:
            pos = [j for j in range(len(Y)) if j != i and Y[j, k] == 1]
            neg = [j for j in range(len(Y)) if Y[j, k] == 0]
            out[names[k]] = (pos, neg)
    return out


for k, (pos, neg) in sets(Y_toy, 0).items():
    print(f"anchor 0, label {k}: positives {pos}, negatives {neg}")

# %% [markdown]
# Image 2 is a positive of anchor 0 for label B and a negative for label A; image 1 the other way
# round. The per-label view keeps the two statements apart.
#
# ## 4. Missing labels poison the negatives
#
# With missing labels, $\mathbf y_i$ holds the **observed** labels only, and the reference code
# stores them as 1/0: 0 means "negative **or missing**" (assume-negative). Hide label A of
# image 5: image 5 silently moves from the positives to the negatives of every anchor that
# carries A. The loss now *pushes* anchor 0 away from an image that truly shares label A with it:
# a **false negative**. Label correction (notebook 01) is the remedy: when the classifier is
# confident that image 5 carries A ($\sigma(s_{5A})>\tau$), $\hat y_{5A}=1$ and image 5 is back
# among the positives.

# %%
Y_obs = Y_toy.clone()
Y_obs[5, 0] = 0  # label A of image 5 is not annotated
for k, (pos, neg) in sets(Y_obs, 0).items():
    print(f"anchor 0, label {k}: positives {pos}, negatives {neg}")
print("false negatives of anchor 0 for A:", [j for j in sets(Y_obs, 0)["A"][1] if Y_toy[j, 0] == 1])

# %% [markdown]
# Notebook 01 counts these false negatives on the whole teaching set: under the 40left setting
# there are many of them in every batch of 64.
#
# ## 5. The loss, three times
#
# `label_contrastive_loss` (see its docstring in `clml_lib/losses/contrastive.py`) is SupCon per
# (anchor, label). With $\tilde{\mathbf z}_i$ and $a_{ij}$ as above,
#
# $$
# \ell_{ik}=-\frac{1}{|\mathcal P_k\setminus\{i\}|}\sum_{p\in\mathcal P_k\setminus\{i\}}
# \log\frac{\exp(a_{ip})}{\sum_{j\in(\mathcal P_k\setminus\{i\})\cup\mathcal N_k}\exp(a_{ij})},
# \qquad
# \mathcal L_{\text{pair}}=\frac{1}{|\mathcal V|}\sum_{(i,k)\in\mathcal V}\ell_{ik},
# $$
#
# where $\mathcal V$ holds the (anchor, label) pairs with $\hat y_{ik}=1$ and at least one
# positive. Guards: an anchor without a positive is skipped (it would give $0/0$); a batch without
# any valid pair gives 0. The temperature defaults to $T=0.1$. An optional `negatives` mask
# restricts $\mathcal N_k$ to known negatives (a 1/0/-1 label matrix). This explicit pairwise term
# is **not** in the official code (docs/method.md §5.1, §6 Q1); the library offers it as a
# teaching object and an ablation (`CLMLLoss(pairwise_weight=...)`).
#
# ### 5a. An explicit loop over (anchor, label, positive), float64


# %%
def loop_loss(Z, Y, T=0.1, Neg=None):
    N, C = Y.shape
    Neg = 1 - Y if Neg is None else Neg
    Zt = [Z[i] / torch.sqrt((Z[i] ** 2).sum()) for i in range(N)]  # normalised rows
    a = lambda i, j: (Zt[i] * Zt[j]).sum() / T  # similarity a_ij  # noqa: E731
    terms = []
    for i in range(N):
        for k in range(C):
            pos = [j for j in range(N) if j != i and Y[i, k] == 1 and Y[j, k] == 1]
            if not pos:
                continue  # no positive: skipped (guard)
            cand = pos + [j for j in range(N) if j != i and Neg[j, k] == 1]
            denom = sum(torch.exp(a(i, j)) for j in cand)
            terms.append(-sum(torch.log(torch.exp(a(i, p)) / denom) for p in pos) / len(pos))
    return sum(terms) / len(terms) if terms else Z.sum() * 0.0


# %% [markdown]
# ### 5b. Vectorised with masks
#
# For every label $k$ build an $N\times N$ positive mask $[\hat y_{ik}\hat y_{jk}]_{i\ne j}$ and a
# candidate mask (positives plus negatives); a masked log-sum-exp gives all denominators at once.


# %%
def masked_loss(Z, Y, T=0.1, Neg=None):
    N, C = Y.shape
    Neg = 1 - Y if Neg is None else Neg
    Zn = Z / Z.norm(dim=1, keepdim=True)  # (N, D)
    A = Zn @ Zn.T / T  # (N, N) a_ij
    off = 1 - torch.eye(N, dtype=Z.dtype)  # (N, N)
    Pos = Y.T[:, :, None] * Y.T[:, None, :] * off  # (C, N, N) anchor i, positive j, label k
    Cand = Pos + Y.T[:, :, None] * Neg.T[:, None, :] * off  # (C, N, N)
    lse = torch.logsumexp(A.expand(C, N, N).masked_fill(Cand == 0, -torch.inf), dim=2)  # (C, N)
    n_pos = Pos.sum(2)  # (C, N)
    valid = n_pos > 0  # (C, N)
    ell = -((A - lse[:, :, None]) * Pos).sum(2)[valid] / n_pos[valid]  # (|V|,)
    return ell.mean() if valid.any() else Z.sum() * 0.0


# %% [markdown]
# ### 5c. The library, and the check (value and gradient)
#
# Random features $\mathbf Z\in\mathbb R^{12\times 5}$ and random multi-labels; both with the
# default negatives ($\hat y_{jk}=0$) and with an explicit known-negative mask.

# %%
gen = torch.Generator().manual_seed(1)
Z0 = torch.randn(12, 5, generator=gen, dtype=torch.float64)  # (N, D)
Y0 = (torch.rand(12, 4, generator=gen, dtype=torch.float64) < 0.4).double()  # (N, C)
known_neg = (1 - Y0) * (torch.rand(12, 4, generator=gen, dtype=torch.float64) < 0.7)  # (N, C)
for neg in (None, known_neg):
    vals, grads = [], []
    for fn in (loop_loss, masked_loss, label_contrastive_loss):  # same signature (Z, Y, T, Neg)
        Z = Z0.clone().requires_grad_(True)
        L = fn(Z, Y0, 0.1, neg)
        L.backward()
        vals.append(L.detach())
        grads.append(Z.grad)
    same = all(torch.allclose(v, vals[0]) for v in vals) and all(
        torch.allclose(g, grads[0]) for g in grads
    )
    print(
        f"negatives={'known mask' if neg is not None else 'all y=0'}: loss {vals[0]:.6f}, loop == "
        f"masked == library: {same}"
    )
    assert same

# %% [markdown]
# ## 6. Pull and push on one anchor
#
# Differentiate $\ell_{ik}$ with respect to the normalised anchor $\tilde{\mathbf z}_i$ (others
# fixed). With $q_{ij}=\exp(a_{ij})/\sum_{j'}\exp(a_{ij'})$ over the candidates $j$:
#
# $$
# -\frac{\partial\ell_{ik}}{\partial\tilde{\mathbf z}_i}
# =\underbrace{\frac{1}{T}\,\frac{1}{|\mathcal P_k\setminus\{i\}|}\sum_{p}\tilde{\mathbf
# z}_p}_{\text{pull towards the positives}}
# \;\underbrace{-\;\frac{1}{T}\sum_{j}q_{ij}\,\tilde{\mathbf z}_j}_{\text{push from the
# softmax-weighted candidates}}.
# $$
#
# The push is weighted by $q_{ij}$: the negatives most similar to the anchor (the hardest) push
# hardest. Check the formula against autograd on a 2-D toy batch:

# %%
ang0 = torch.tensor([0.3, 0.9, 2.2, 2.8, 4.0, 5.2, 1.5, 3.4], dtype=torch.float64)  # (N,)
P0 = torch.stack([ang0.cos(), ang0.sin()], 1)  # (N, 2) points on the unit circle
Y2 = torch.tensor(
    [[1, 0, 0], [1, 0, 0], [0, 1, 0], [0, 1, 0], [0, 0, 1], [0, 0, 1], [1, 1, 0], [0, 1, 1]],
    dtype=torch.float64,
)  # (N, 3) labels A, B, C
T, i, k = 0.5, 0, 0  # anchor 0, label A
a = P0 @ P0[i] / T  # (N,) similarities of the anchor
pos = (Y2[:, k] == 1) & (torch.arange(8) != i)  # (N,)
cand = torch.arange(8) != i  # (N,) default negatives: every other image
q = torch.softmax(a.masked_fill(~cand, -torch.inf), 0)  # (N,)
pull = P0[pos].mean(0) / T  # (2,)
push = -(q[:, None] * P0).sum(0) / T  # (2,)
zi = P0[i].clone().requires_grad_(True)
a_i = (
    torch.cat([P0[:i] @ zi, (zi @ zi)[None], P0[i + 1 :] @ zi]) / T
)  # (N,) same, as a function of zi
ell = -(a_i[pos] - torch.logsumexp(a_i[cand], 0)).mean()
ell.backward()
print("pull + push == -autograd gradient:", torch.allclose(pull + push, -zi.grad))
assert torch.allclose(pull + push, -zi.grad)

# %%
colors = {
    (1, 0, 0): "tab:blue",
    (0, 1, 0): "tab:orange",
    (0, 0, 1): "tab:green",
    (1, 1, 0): "tab:purple",
    (0, 1, 1): "tab:olive",
    (1, 0, 1): "tab:brown",
}
tag = lambda y: "".join(n for n, v in zip(names, y) if v) or "-"  # noqa: E731


def scatter(ax, P, Y, title):
    t = torch.linspace(0, 2 * math.pi, 200)
    ax.plot(t.cos(), t.sin(), color="0.85", lw=1)
    for j, (p, y) in enumerate(zip(P, Y.long().tolist())):
        ax.scatter(*p, s=80, color=colors[tuple(y)], zorder=3, label=tag(y))
        ax.annotate(str(j), p.tolist(), xytext=(6, 6), textcoords="offset points")
    handles, names_ = ax.get_legend_handles_labels()
    uniq = dict(zip(names_, handles))
    ax.legend(uniq.values(), uniq.keys(), title="labels", fontsize=8, loc="lower left")
    ax.set(
        aspect="equal",
        title=title,
        xlabel="$z_1$",
        ylabel="$z_2$",
        xlim=(-1.5, 1.5),
        ylim=(-1.5, 1.5),
    )


mean_pos = P0[pos].mean(0)  # (2,) mean of the anchor's A-positives (images 1 and 6)
fig, ax = plt.subplots(figsize=(5.5, 5.5))
scatter(ax, P0, Y2, "anchor 0, label A: -gradient = pull + push (x0.3)")
ax.plot([0, mean_pos[0]], [0, mean_pos[1]], color="tab:green", ls=":", lw=1.5)
ax.scatter(*mean_pos, marker="x", s=90, color="tab:green", zorder=4)
ax.text(
    *(mean_pos + torch.tensor([-0.75, 0.05], dtype=torch.float64)).tolist(),
    "mean of\npositives",
    color="tab:green",
    fontsize=9,
)
for vec, c, lab in [
    (pull, "tab:green", "pull"),
    (push, "tab:red", "push"),
    (pull + push, "k", "total"),
]:
    ax.annotate(
        "",
        xy=(P0[i] + 0.3 * vec).tolist(),
        xytext=P0[i].tolist(),
        arrowprops=dict(arrowstyle="-|>", color=c, lw=2, mutation_scale=15),
    )
    ax.text(*(P0[i] + 0.3 * vec + 0.05).tolist(), lab, color=c, fontsize=11)
plt.show()
cross = float(pull[0] * mean_pos[1] - pull[1] * mean_pos[0])  # 0 iff pull is parallel to the mean
print(
    f"pull parallel to the mean of the positives (cross product {cross:.1e}), same direction: "
    f"{float(pull @ mean_pos) > 0}"
)
assert abs(cross) < 1e-12 and float(pull @ mean_pos) > 0

# %% [markdown]
# The pull is $\frac1T$ times the mean of the anchor's A-positives (images 1 and 6): a vector
# **parallel** to the dotted line from the origin to that mean (the green cross), drawn here from
# the anchor. It does not point from the anchor *at* the mean; what moves the normalised anchor is
# the part of the vector tangent to the circle, and the tangent part of the pull turns the anchor
# towards the positives. The push is $-\frac1T$ times the softmax-weighted mean of all other
# images. Only the tangent part of the total changes $\tilde{\mathbf z}_i$.
#
# ## 7. A few gradient steps on a 2-D toy embedding
#
# Now let every point move: 150 gradient steps of $\mathcal L_{\text{pair}}$ (library call,
# $T=0.5$) on the eight raw 2-D points, once with the full labels and once with label A of
# image 6 missing (assume-negative: it becomes a negative of label A).


# %%
def run_toy(Y, steps=150, lr=0.1, T=0.5):
    X = P0.clone().requires_grad_(True)
    path = [F.normalize(X.detach(), dim=1)]
    opt = torch.optim.SGD([X], lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        label_contrastive_loss(X, Y, temperature=T).backward()
        opt.step()
        path.append(F.normalize(X.detach(), dim=1))
    return torch.stack(path)  # (steps + 1, N, 2) normalised positions


Y2_missing = Y2.clone()
Y2_missing[6, 0] = 0  # image 6 is {A, B}; A is not annotated
path_full, path_miss = run_toy(Y2), run_toy(Y2_missing)

# %%
fig, axes = plt.subplots(1, 3, figsize=(15, 5))
scatter(axes[0], P0, Y2, "before (true labels)")
for ax, path, title in [
    (axes[1], path_full, "after 150 steps, full labels"),
    (axes[2], path_miss, "after 150 steps, A of image 6 missing"),
]:
    for j, y in enumerate(Y2.long().tolist()):  # trajectories, drawn just inside the circle
        tr = 0.9 * path[:, j]  # (steps + 1, 2)
        ax.plot(tr[:, 0], tr[:, 1], color=colors[tuple(y)], lw=2, alpha=0.7)
        ax.annotate(
            "",
            xy=tr[-1].tolist(),
            xytext=tr[-5].tolist(),
            arrowprops=dict(arrowstyle="-|>", color=colors[tuple(y)], mutation_scale=12),
        )
    scatter(ax, path[-1], Y2, title + "\n(coloured lines: trajectories, at radius 0.9)")
plt.show()

# %%
cos = lambda P, u, v: float(P[u] @ P[v])  # noqa: E731
print(
    f"cos(image 6, A-images 0/1) full labels: {cos(path_full[-1], 6, 0):.3f} / "
    f"{cos(path_full[-1], 6, 1):.3f}"
)
print(
    f"cos(image 6, A-images 0/1) A missing  : {cos(path_miss[-1], 6, 0):.3f} / "
    f"{cos(path_miss[-1], 6, 1):.3f}"
)
print(
    f"cos(image 6, B-images 2/3) full / missing: {cos(path_full[-1], 6, 2):.3f} / "
    f"{cos(path_miss[-1], 6, 2):.3f}"
)
assert cos(path_miss[-1], 6, 0) < cos(path_full[-1], 6, 0)

# %% [markdown]
# With full labels the single-label groups gather into three arcs and each two-label image
# settles **between** the groups of its labels (image 6 between A and B, image 7 between B and
# C): the embedding keeps the label structure. With A of image 6 missing, the A-anchors push
# image 6 away as a negative and it drifts into the B group: one false negative is enough to
# bend the geometry. (In 2-D there is little room; with $d=2048$ there is much more.)
#
# ## 8. The nuclear-norm objective is a contrastive loss too
#
# The official code does not use pairwise similarities at all (docs/method.md §5.1). It minimises
# (docs/method.md §2.3, with $\lambda=1$)
#
# $$
# \mathcal L_{\text{CLML}}(\mathbf Z,\hat{\mathbf Y})=\frac{1}{N}\Big(\sum_{k=1}^{C}
# \max\big(\Delta,\lVert\mathbf Z_k\rVert_*\big)-\lVert\mathbf Z\rVert_*\Big),\qquad\Delta=1,
# $$
#
# with $\mathbf Z_k$ the rows of images that carry label $k$. Where is the contrast? Take two unit
# vectors with $\cos\theta=c$. The Gram matrix $\begin{pmatrix}1&c\\c&1\end{pmatrix}$ has
# eigenvalues $1\pm c$, so the singular values of $[\mathbf z_1;\mathbf z_2]$ are
# $\sqrt{1\pm c}$ and
#
# $$
# \lVert[\mathbf z_1;\mathbf z_2]\rVert_*=\sqrt{1+c}+\sqrt{1-c},
# $$
#
# smallest ($\sqrt2$) when the vectors are collinear, whether they point the same way or opposite
# ways ($c=\pm1$), and largest ($2$) when they are orthogonal. Since
# $(\sqrt{1+c}+\sqrt{1-c})^2=2+2\sqrt{1-c^2}$, it depends on $c^2$ only: the nuclear norm of a
# pair measures how far the pair is from **collinear** (it decreases with $|\cos\theta|$), not how
# similar the two vectors are. A pair at 180° scores like a pair at 0°, and the curve below peaks
# at 90°.

# %%
theta = torch.linspace(0, math.pi, 181, dtype=torch.float64)  # (181,)
pairs = torch.stack(
    [
        torch.stack([torch.ones_like(theta), torch.zeros_like(theta)], 1),
        torch.stack([theta.cos(), theta.sin()], 1),
    ],
    1,
)  # (181, 2, 2)
nuc = torch.linalg.matrix_norm(pairs, ord="nuc")  # (181,)
formula = (1 + theta.cos()).sqrt() + (1 - theta.cos()).sqrt()  # (181,)
print("sqrt(1+c) + sqrt(1-c) == nuclear norm:", torch.allclose(nuc, formula))
assert torch.allclose(nuc, formula)
fig, ax = plt.subplots()
ax.plot(torch.rad2deg(theta), nuc, label=r"$\|[\mathbf{z}_1;\mathbf{z}_2]\|_*$")
ax.axvline(90, color="0.6", ls=":")
ax.set(
    xlabel=r"angle $\theta$ between $\mathbf{z}_1$ and $\mathbf{z}_2$ (degrees)",
    ylabel="nuclear norm",
    title="nuclear norm of two unit vectors",
)
ax.legend()
plt.show()

# %% [markdown]
# So, term by term:
#
# * **per-label low rank, $+\lVert\mathbf Z_k\rVert_*$ (minimised) = the pull.** It is smallest
#   when the images of label $k$ are collinear: it pulls them onto a common line (more generally
#   a low-dimensional subspace), which is the role of the positives in SupCon;
# * **global high rank, $-\lVert\mathbf Z\rVert_*$ (maximised) = the push.** It is largest when
#   the batch spreads over as many orthogonal directions as possible: it pushes images, and
#   therefore labels, apart, which is the role of the negatives.
#
# Two differences with SupCon. First, "together" means *on the same subspace*, not *at the same
# point*: lengths are free and, in principle, $\mathbf z$ and $-\mathbf z$ count as together (the
# post-ReLU features of the reference are non-negative, so the sign case does not arise there).
# Second, the negatives of label $k$ are not listed anywhere: the push acts between all images,
# and the per-label terms hold the positives together against it.
#
# Before trusting the picture, build the objective from scratch (one SVD per label, float64) and
# check it against the library's batched `low_rank_loss`, value and gradient.


# %%
def low_rank_scratch(Z, Y, delta=1.0):
    per_label = []
    for k in range(Y.shape[1]):
        Zk = Z[Y[:, k] == 1]  # (n_k, D)
        nk = torch.linalg.matrix_norm(Zk, ord="nuc") if len(Zk) else Z.sum() * 0.0  # ||Z_k||_*
        per_label.append(torch.clamp(nk, min=delta))  # max(Delta, ||Z_k||_*)
    return (torch.stack(per_label).sum() - torch.linalg.matrix_norm(Z, ord="nuc")) / Z.shape[0]


Z = Z0.clone().requires_grad_(True)
Zl = Z0.clone().requires_grad_(True)
low_rank_scratch(Z, Y0).backward()
low_rank_loss(Zl, Y0).backward()
print(
    f"loss {low_rank_scratch(Z0, Y0):.6f}; scratch == library (value, gradient):",
    torch.allclose(low_rank_scratch(Z0, Y0), low_rank_loss(Z0, Y0)),
    torch.allclose(Z.grad, Zl.grad),
)
assert torch.allclose(low_rank_scratch(Z0, Y0), low_rank_loss(Z0, Y0)) and torch.allclose(
    Z.grad, Zl.grad
)

# %% [markdown]
# (Notebook 03 derives the subgradient $\mathbf U_r\mathbf V_r^\top$ and the batched Gram/eigh
# route of the library; here we only need that the two agree.)
#
# ## 9. The OLÉ theorem: the optimum is orthogonal label subspaces
#
# For **single-label** data the rows of $\mathbf Z$ are partitioned by label, and the triangle
# inequality of the nuclear norm ($\mathbf Z=\sum_k\mathbf E_k\mathbf Z_k$ with disjoint row blocks)
# gives, with $\Delta=0$,
#
# $$
# \sum_k\lVert\mathbf Z_k\rVert_*-\lVert\mathbf Z\rVert_*\ \ge\ 0,
# $$
#
# with equality **if and only if** the row spaces of the $\mathbf Z_k$ are mutually orthogonal
# (the theorem behind the OLÉ loss of Lezama et al., CVPR 2018, which the official CLML code
# edits). So the loss is a contrast between labels: it is zero exactly when different labels live
# in orthogonal subspaces. The proof is short.
#
# *If.* When the row spaces are orthogonal,
# $\mathbf Z^\top\mathbf Z=\sum_k\mathbf Z_k^\top\mathbf Z_k$ is a sum of PSD matrices with mutually
# orthogonal ranges, so its eigenvalues are those of the $\mathbf Z_k^\top\mathbf Z_k$ put together:
# the singular values of $\mathbf Z$ are those of the blocks, and the nuclear norms add up.
#
# *Only if.* Take the SVD $\mathbf Z=\mathbf U\boldsymbol\Sigma\mathbf V^\top$ and
# $\mathbf W=\mathbf U_r\mathbf V_r^\top$, so that
# $\langle\mathbf W,\mathbf Z\rangle=\lVert\mathbf Z\rVert_*$
# and $\lVert\mathbf W\rVert_2\le1$. Split $\mathbf W$ into the row blocks $\mathbf W_k$ of the
# labels:
# $\lVert\mathbf W_k\rVert_2\le1$, and
# $\lVert\mathbf Z\rVert_*=\sum_k\langle\mathbf W_k,\mathbf Z_k\rangle\le\sum_k\lVert\mathbf
# Z_k\rVert_*$
# since
# $\langle\mathbf W_k,\mathbf Z_k\rangle=\sum_r\sigma_r\,\mathbf u_r^\top\mathbf W_k\mathbf
# v_r\le\sum_r\sigma_r$
# (SVD of $\mathbf Z_k$, each $\mathbf u_r^\top\mathbf W_k\mathbf v_r\le1$). Equality of the totals
# forces
# $\mathbf u_r^\top\mathbf W_k\mathbf v_r=1$ for every singular pair of every block, and since
# $\lVert\mathbf W_k\mathbf v_r\rVert\le1$, $\lVert\mathbf W_k^\top\mathbf u_r\rVert\le1$
# (Cauchy–Schwarz
# with equality): $\mathbf W_k\mathbf v_r=\mathbf u_r$ and
# $\mathbf W_k^\top\mathbf u_r=\mathbf v_r$.
# Now take $\mathbf v$ a right singular vector of block $k$:
# $\lVert\mathbf W\mathbf v\rVert^2=\sum_l\lVert\mathbf W_l\mathbf v\rVert^2\le1$
# and $\lVert\mathbf W_k\mathbf v\rVert=1$, so $\mathbf W_l\mathbf v=0$ for every other label $l$.
# For a
# right singular vector $\mathbf v'$ of block $l$ with left vector $\mathbf u'$:
# $\mathbf v'^\top\mathbf v=(\mathbf W_l^\top\mathbf u')^\top\mathbf v=\mathbf u'^\top\mathbf
# W_l\mathbf v=0$.
# The right singular vectors span the row spaces, so the row spaces of blocks $k$ and $l$ are
# orthogonal. $\square$
#
# (For multi-label data with at least one label per image the loss is still $\ge0$: with
# $\mathbf D_k$ the 0/1 diagonal matrix of the rows of label $k$ and $m_i\ge1$ the labels of image
# $i$,
# $\sum_k\lVert\mathbf Z_k\rVert_*=\sum_k\lVert\mathbf D_k\mathbf
# Z\rVert_*\ge\lVert\operatorname{diag}(m)\mathbf Z\rVert_*\ge\lVert\mathbf Z\rVert_*$,
# docs/method.md §2.3; notebook 03 checks the chain.)
# Numerically: random single-label batches are all $\ge 0$, and an orthogonal construction is 0.

# %%
g = torch.Generator().manual_seed(2)
Y_single = torch.eye(3, dtype=torch.float64).repeat_interleave(4, 0)  # (12, 3), 4 images per label
rand_losses = torch.stack(
    [
        low_rank_loss(torch.randn(12, 6, generator=g, dtype=torch.float64), Y_single, delta=0.0)
        for _ in range(200)
    ]
)  # (200,)
basis = torch.linalg.qr(torch.randn(6, 6, generator=g, dtype=torch.float64))[
    0
]  # orthonormal columns
sub = [basis[:, 2 * k : 2 * k + 2] for k in range(3)]  # three orthogonal 2-D subspaces of R^6
Z_orth = torch.cat(
    [torch.randn(4, 2, generator=g, dtype=torch.float64) @ s.T for s in sub]
)  # (12, 6)
print(
    f"200 random single-label batches: min loss {rand_losses.min():.4f} >= 0: "
    f"{bool((rand_losses >= 0).all())}"
)
loss_orth = float(low_rank_loss(Z_orth, Y_single, delta=0.0))  # 0 up to float64 rounding
print(f"orthogonal label subspaces: loss 0 to rounding (|loss| < 1e-10): {abs(loss_orth) < 1e-10}")
assert (rand_losses >= 0).all() and abs(loss_orth) < 1e-10

# %% [markdown]
# ## 10. Watching the subspaces become orthogonal
#
# Three labels, five images each, in $\mathbb R^3$. The images of each label start as a noisy
# cluster around its own direction, but the three directions are only 35°–50° apart. We run
# 300 gradient steps on $\mathcal L_{\text{CLML}}$ of the **row-normalised** points
# ($\mathbf z_i/\lVert\mathbf z_i\rVert$, so the 1-homogeneous loss cannot shrink the points to 0;
# with unit rows $\lVert\mathbf Z_k\rVert_*\ge\sqrt{5}>\Delta$, so the floor never binds here).
# The angle between two label subspaces is measured between their leading right singular vectors.


# %%
def label_directions(Z, Y):
    return torch.stack(
        [torch.linalg.svd(Z[Y[:, k] == 1])[2][0] for k in range(Y.shape[1])]
    )  # (C, D)


def pairwise_angles(Z, Y):
    V = label_directions(Z, Y)  # (C, D) unit vectors, sign-free
    cosines = (V @ V.T).abs().clamp(max=1.0)  # (C, C)
    iu = torch.triu_indices(len(V), len(V), 1)
    return torch.rad2deg(torch.arccos(cosines[iu[0], iu[1]]))  # (C(C-1)/2,) degrees


axis = torch.ones(3, dtype=torch.float64) / math.sqrt(3)
spoke = torch.tensor(
    [[1.0, -1.0, 0.0], [0.0, 1.0, -1.0], [-1.0, 0.0, 1.0]], dtype=torch.float64
) / math.sqrt(2)
centres = (
    math.cos(math.radians(25)) * axis + math.sin(math.radians(25)) * spoke
)  # (3, 3) label directions
X3 = centres.repeat_interleave(5, 0) + 0.15 * torch.randn(
    15, 3, generator=g, dtype=torch.float64
)  # (15, 3)
Y3 = torch.eye(3, dtype=torch.float64).repeat_interleave(5, 0)  # (15, 3) single labels
print(
    "angles between label subspaces at the start (deg):",
    pairwise_angles(F.normalize(X3, dim=1), Y3).numpy().round(1),
)

# %%
# NBVAL_IGNORE_OUTPUT
# 300 gradient steps carry the last bits of the CPU's float kernels into the
# printed angles (a few tenths of a degree apart between CPUs); the assert checks the claim
X = X3.clone().requires_grad_(True)
opt = torch.optim.SGD([X], lr=0.5)
history = []  # (step, loss, angles)
for step in range(301):
    Zn = F.normalize(X, dim=1)  # (15, 3) unit rows
    L = low_rank_loss(Zn, Y3, delta=1.0)
    history.append((step, L.item(), pairwise_angles(Zn.detach(), Y3)))
    opt.zero_grad()
    L.backward()
    opt.step()
Z_end = F.normalize(X.detach(), dim=1)
print(
    "angles at the end (deg):",
    history[-1][2].numpy().round(1),
    f" loss {history[0][1]:.4f} -> {history[-1][1]:.4f}",
)
assert (history[-1][2] > 85).all() and history[-1][1] < 0.1 * history[0][1]

# %%
fig = plt.figure(figsize=(15, 4.8))
for n, (Zp, title) in enumerate([(F.normalize(X3, dim=1), "before"), (Z_end, "after 300 steps")]):
    ax = fig.add_subplot(1, 3, n + 1, projection="3d")
    for k, c in enumerate(["tab:blue", "tab:orange", "tab:green"]):
        P = Zp[Y3[:, k] == 1]
        ax.scatter(P[:, 0], P[:, 1], P[:, 2], color=c, s=40, label=f"label {names[k]}")
        d = label_directions(Zp, Y3)[k] * torch.sign(label_directions(Zp, Y3)[k].sum())
        ax.plot([0, d[0]], [0, d[1]], [0, d[2]], color=c, lw=2)
    ax.set(
        title=f"{title}: unit rows and label directions",
        xlabel="$z_1$",
        ylabel="$z_2$",
        zlabel="$z_3$",
    )
    ax.legend(fontsize=8)
ax = fig.add_subplot(1, 3, 3)
steps = [h[0] for h in history]
for p, lab in enumerate(["A-B", "A-C", "B-C"]):
    ax.plot(steps, [float(h[2][p]) for h in history], label=f"angle {lab}")
ax.axhline(90, color="0.6", ls=":")
ax.set(
    xlabel="gradient step",
    ylabel="angle between label subspaces (deg)",
    title="the subspaces become orthogonal",
)
ax2 = ax.twinx()
ax2.plot(steps, [h[1] for h in history], color="k", ls="--", label="loss")
ax2.set_ylabel(r"$\mathcal{L}_{\mathrm{CLML}}$ (dashed)")
ax.legend(loc="center right")
plt.tight_layout()
plt.show()

# %% [markdown]
# Each label's images are pulled onto one line (their own rank-1 subspace; with unit rows that
# is one point of the sphere, up to sign) while the three lines are pushed apart until they are
# mutually orthogonal, and the loss falls towards its lower bound
# 0: a contrastive geometry from singular values alone.
#
# ### The $\Delta$ floor sets the scale
#
# Without normalisation the objective is 1-homogeneous, $\mathcal L(\alpha\mathbf Z)=\alpha\,
# \mathcal L(\mathbf Z)$ for $\Delta=0$, and its minimum 0 is also reached at $\mathbf Z=0$:
# nothing stops the features from shrinking. The floor $\max(\Delta,\cdot)$ switches the pull of
# a label off once $\lVert\mathbf Z_k\rVert_*\le\Delta$ while the global push keeps acting
# (docs/method.md §2.3; decision §6 Q4: kept, $\Delta=1$). Same points, raw (unnormalised) and
# scaled down by 0.4,
# for $\Delta\in\{0,1,3\}$:


# %%
def run_raw(delta, steps=300, lr=0.3):
    X = (0.4 * X3).clone().requires_grad_(True)
    opt = torch.optim.SGD([X], lr=lr)
    norms = []
    for _ in range(steps + 1):
        L = low_rank_loss(X, Y3, delta=delta)
        norms.append(
            [
                float(torch.linalg.matrix_norm(X.detach()[Y3[:, k] == 1], ord="nuc"))
                for k in range(3)
            ]
        )
        opt.zero_grad()
        L.backward()
        opt.step()
    return torch.tensor(norms), pairwise_angles(X.detach(), Y3)  # (steps + 1, C), final angles


# NBVAL_IGNORE_OUTPUT
# 300 gradient steps carry the last bits of the CPU's float kernels into the
# printed norms (a few hundredths apart between CPUs); the asserts check the claims made below
runs = {d: run_raw(d) for d in (0.0, 1.0, 3.0)}
for d, (norms, ang) in runs.items():
    print(
        f"Delta={d:.0f}: label nuclear norms at the end {norms[-1].numpy().round(2)}, angles "
        f"{ang.numpy().round(1)}"
    )
shrink = float(runs[0.0][0][-1].mean() / runs[0.0][0][0].mean())  # Delta = 0: end / start
print(f"Delta=0: the label norms end at {shrink:.2f} of their start")
assert 0.65 < shrink < 0.85  # "about 25 % smaller"
assert all((runs[d][0][-1] > 0.9 * d).all() and (runs[d][0][-1] < 1.1 * d).all() for d in (1, 3))
assert all((ang > 84).all() for _, ang in runs.values())  # near-orthogonal in every case

# %%
fig, ax = plt.subplots(figsize=(7, 4))
for (d, (norms, _)), c in zip(runs.items(), ["tab:red", "tab:blue", "tab:green"]):
    ax.plot(norms.mean(1), color=c, label=rf"$\Delta={d:.0f}$")
    ax.axhline(d, color=c, ls=":", lw=1)
ax.set(
    xlabel="gradient step",
    ylabel=r"mean label nuclear norm $\|\mathbf{Z}_k\|_*$",
    title=r"raw features: the label norms settle near $\Delta$ (dotted)",
)
ax.legend()
plt.show()
assert all((runs[d][0][-1] > 0.9 * d).all() for d in (1.0, 3.0))

# %% [markdown]
# With $\Delta=0$ nothing anchors the scale: the features shrink for as long as the loss is
# positive and stop wherever the subspaces happen to become orthogonal (here about 25 % smaller;
# $\mathbf Z=0$ is a minimiser too). With $\Delta=1$ or $3$ the label norms settle at $\Delta$,
# the scale at which the pull switches off (for $\Delta=3$ the global push first has to grow the
# features), while the subspaces still become orthogonal. In a network that
# also feeds $\mathbf Z$ to the classifier, the base loss fixes the scale as well.
#
# ## Summary
#
# * "Shares a label" is not a class: in a batch of 64 teaching images it links every image to
#   every other, so SupCon with such positives loses the label structure.
# * The per-label view (docs/method.md §2.2) gives each (anchor, label) its own positives
#   $\mathcal P_k\setminus\{i\}$ and negatives $\mathcal N_k$; under assume-negative labels a
#   missing positive lands in $\mathcal N_k$ and is pushed away (a false negative), which label
#   correction repairs.
# * `label_contrastive_loss` = a loop over (anchor, label, positive) = a masked log-sum-exp; value
#   and gradient agree in float64. Its gradient is a pull towards the mean positive and a
#   softmax-weighted push.
# * The official nuclear-norm objective is contrastive too: $\lVert\mathbf Z_k\rVert_*$ pulls a
#   label onto a low-dimensional subspace, $-\lVert\mathbf Z\rVert_*$ pushes labels apart; for
#   single labels it is $\ge0$ and zero iff the label subspaces are orthogonal, which gradient
#   descent reaches on a 3-D toy. The floor $\Delta$ stops the collapse of raw features.
#
# ## Exercises
#
# Each exercise has a checker: replace `None` by your answer and run the cell. Written solutions
# and code: `notebooks/solutions/ch02.md` and `ch02.py`.
#
# 1. Write the nuclear norm of two unit vectors at angle $\theta$ as a function `f(theta)` (a
#    float64
#    tensor of angles in, a tensor out), and give the angle in $[0,\pi]$ where it is largest. Show
#    that it depends on $\cos^2\theta$ only.

# %%
from clml_lib.exercises import ch02

answer_1 = None  # (f, theta_max)
_ = ch02.check_pair_nuclear_norm(answer_1)

# %% [markdown]
# 2. Build a single-label batch `(Z, Y)` with at least 3 labels of at least 2 images each, no zero
#    row and $D\le6$, whose low-rank loss with $\Delta=0$ is 0. Which part of the proof of section 9
#    tells you how?

# %%
answer_2 = None  # (Z, Y)
_ = ch02.check_zero_loss_batch(answer_2)

# %% [markdown]
# 3. In the toy batch of section 6 (anchor 0, label A, every other image a candidate), which image
#    gets the largest weight $q_{0j}$ in the push, and how large is it, at $T=0.1$ and at $T=2$?
#    Answer as `{0.1: (j, q), 2.0: (j, q)}`. How does the temperature change the push?

# %%
answer_3 = None  # {0.1: (j, q), 2.0: (j, q)}
_ = ch02.check_push_weights(answer_3)
