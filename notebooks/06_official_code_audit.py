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
# # 06 · An audit of the official CLML code, measured on small tensors
#
# The paper (arXiv 2209.01314) ships its code (github.com/chuangua/ContrastiveLossMLML). Reading
# it next to the paper turns up discrepancies (docs/method.md §5). Some are cosmetic; others
# change what a training run computes. This notebook **measures** each one that changes results,
# with our own code on tensors of a few kilobytes. We do not run or copy the official code: we
# rebuild the few lines that matter and check them against `clml_lib`.
#
# **You will learn**
# 1. why a custom `backward` that ignores `grad_output` divides the CLML gradient by the
#    `GradScaler` loss scale $S$, so that the released script trains with $\lambda/S$ instead of
#    $\lambda$ (docs/method.md §5.5);
# 2. how the two code versions place $\lambda$ (2022 vs 2023, docs/method.md §5.4);
# 3. what the $\Delta$ floor and absent labels add to the logged loss (5.2, 5.14);
# 4. why the base-loss reduction (sum vs mean) changes the effective $\lambda$ (2.4);
# 5. four small ones: dead margin code (5.8), `type=bool` argument parsing (5.12), inputs
#    without ImageNet normalisation (5.10), and an older upload that calls the loss with two
#    arguments swapped.
#
# **Prerequisites:** notebook 03 (the low-rank terms and their subgradient). Basic autograd.
#
# **Runs in** about 10–25 s on 2 CPU cores. No training, no data files (the measured time, date
# and machine load: notebooks/run_times.json).

# %%
from clml_lib.nb import setup_notebook

setup_notebook(seed=0, threads=1)  # one torch thread, as every notebook and training worker
import argparse

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from clml_lib.losses import (
    BCELoss,
    CLMLLoss,
    correct_labels,
    equivalent_lambda,
    low_rank_loss,
    official_style_low_rank,
)
from clml_lib.models import MultiLabelNet

# %% [markdown]
# ## 1. A backward that ignores `grad_output`, under `GradScaler` (docs/method.md §5.5)
#
# The CLML term (docs/method.md §2.3, with the $\lambda$ inside) is
#
# $$
# \mathcal L_{\text{CLML}}(\mathbf Z,\hat{\mathbf
# Y})=\frac{\lambda}{N}\Big(\sum_{k=1}^{C}\max\big(\Delta,\lVert\mathbf
# Z_k\rVert_*\big)-\lVert\mathbf Z\rVert_*\Big).
# $$
#
# The official `CLLoss` is a `torch.autograd.Function`. Its `forward` computes the value *and*
# the subgradient $\mathbf D=\partial\mathcal L_{\text{CLML}}/\partial\mathbf Z$ and stores
# $\mathbf D$; its `backward(ctx, grad_output)` returns $\mathbf D$. The chain rule asks for
# something else. If the scalar that is finally differentiated is $F$, then `grad_output`
# $=\partial F/\partial\mathcal L_{\text{CLML}}$, and `backward` must return
# $\texttt{grad\_output}\cdot\mathbf D$.
#
# Usually $F=\mathcal L_{\text{base}}+\mathcal L_{\text{CLML}}$, so `grad_output` $=1$ and
# nobody notices. But `train_clml.py` calls `scaler.scale(loss).backward()`, i.e.
# $F=S\,(\mathcal L_{\text{base}}+\mathcal L_{\text{CLML}})$ with the loss scale $S=2^{16}$ at the
# start, and `scaler.step` first divides every gradient by $S$. The base-loss gradient makes the
# round trip $\times S$, $\div S$. The CLML gradient skips the $\times S$:
#
# $$
# \nabla_\theta^{\text{official}}=\nabla_\theta\mathcal
# L_{\text{base}}+\frac{1}{S}\,\nabla_\theta\mathcal L_{\text{CLML}}
# \quad\Longrightarrow\quad \lambda_{\text{eff}}=\frac{\lambda}{S}.
# $$
#
# First the defect, from scratch: the objective written with `torch.linalg.matrix_norm` (plain
# autograd, no `clml_lib`), wrapped in a 5-line `Function` whose backward ignores `grad_output`.


# %%
def plain_low_rank(Z, Y, delta=1.0):
    """(1/N)(sum_k max(delta, ||Z_k||_*) - ||Z||_*) with torch's own nuclear norm.

    Z (N, D), Y (N, C)."""
    local = [
        torch.clamp(torch.linalg.matrix_norm(Z[Y[:, k] == 1], ord="nuc"), min=delta)
        if Y[:, k].any()
        else Z.new_tensor(delta)
        for k in range(Y.shape[1])
    ]
    return (torch.stack(local).sum() - torch.linalg.matrix_norm(Z, ord="nuc")) / Z.shape[0]


class IgnoresGradOutput(torch.autograd.Function):
    @staticmethod
    def forward(ctx, Z, Y):
        with torch.enable_grad():
            Zd = Z.detach().requires_grad_(True)  # (N, D)
            value = plain_low_rank(Zd, Y)
            (D,) = torch.autograd.grad(value, Zd)  # (N, D) the stored subgradient
        ctx.save_for_backward(D)
        return value.detach()

    @staticmethod
    def backward(ctx, grad_output):
        return ctx.saved_tensors[0], None  # the defect: should be grad_output * D


# %% [markdown]
# A tiny network on 16 tiny "images" `(3, 4, 4)`: a flatten+linear+ReLU body gives $\mathbf Z$
# `(16, 24)`, a linear head gives the logits `(16, 6)` (`MultiLabelNet`, the wrapper the library's
# models use). `body_grad` returns the gradient on the body weights after `backward`, with or
# without a `GradScaler` (`unscale_` is the first thing `scaler.step` does). Everything is float64
# so that the comparisons are exact to rounding.

# %%
torch.manual_seed(0)
net = MultiLabelNet(
    nn.Sequential(nn.Flatten(), nn.Linear(48, 24), nn.ReLU()), 24, 6, "toy"
).double()
opt = torch.optim.SGD(net.parameters(), lr=0.0)
g = torch.Generator().manual_seed(1)
x = torch.randn(16, 3, 4, 4, generator=g, dtype=torch.float64)  # (N, 3, H, W)
y = (torch.rand(16, 6, generator=g) < 0.4).double()  # (N, C) observed labels
S0 = 2.0**16  # GradScaler's initial loss scale


def body_grad(criterion, scale=None):
    """d criterion(logits, z, y) / d body weights; through GradScaler(init_scale=scale) if given."""
    net.zero_grad(set_to_none=True)
    logits, z = net(x)  # (N, C), (N, D)
    loss = criterion(logits, z, y)
    if scale is None:
        loss.backward()
    else:
        scaler = torch.amp.GradScaler("cpu", init_scale=scale)
        scaler.scale(loss).backward()
        scaler.unscale_(opt)  # the division by S inside scaler.step
    return net.body[1].weight.grad.clone()  # (24, 48)


# %% [markdown]
# Three versions of the CLML term ($\lambda=1$): ours (`low_rank_loss`, gradient carried by
# autograd), the library's rebuild of the official path (`official_style_low_rank`), and the
# scratch `Function` above. Gradient norms without and with the scaler:

# %%
criteria = {
    "ours: low_rank_loss": lambda s, z, y: low_rank_loss(z, y),
    "official_style_low_rank": lambda s, z, y: official_style_low_rank(z, y),
    "scratch IgnoresGradOutput": lambda s, z, y: IgnoresGradOutput.apply(z, y),
}
grads = {name: (body_grad(c), body_grad(c, scale=S0)) for name, c in criteria.items()}
rows = [
    (name, f"{a.norm():.6f}", f"{b.norm():.4e}", f"{(b.norm() / a.norm()).item():.4e}")
    for name, (a, b) in grads.items()
]
print(
    pd.DataFrame(
        rows, columns=["CLML term", "|grad| no scaler", "|grad| GradScaler", "ratio"]
    ).to_string(index=False)
)
print(f"1/S = {1 / S0:.4e}")

# %%
ours, official, scratch = grads.values()
checks = {
    "scratch == official_style_low_rank (no scaler)": torch.allclose(scratch[0], official[0]),
    "scratch == official_style_low_rank (scaler)": torch.allclose(scratch[1], official[1]),
    "official == ours without scaler": torch.allclose(official[0], ours[0]),
    "ours: scaler changes nothing": torch.allclose(ours[1], ours[0]),
    "official: scaler divides by S": torch.allclose(official[1], official[0] / S0),
}
for name, ok in checks.items():
    print(f"{name:48s} {ok}")
assert all(checks.values())

# %% [markdown]
# Without a scaler the three gradients agree: the official *value* and *subgradient* are right.
# Under the scaler the official gradient is exactly $1/S=1.5\times10^{-5}$ of what it should be.
#
# The same defect makes the term deaf to any outer weight. Multiplying the loss by 1000 (or by
# $\lambda$ outside the `Function`) multiplies our gradient by 1000 and leaves the official one
# unchanged:

# %%
for name in ["ours: low_rank_loss", "scratch IgnoresGradOutput"]:
    c = criteria[name]
    g1, g1000 = body_grad(c), body_grad(lambda s, z, y: 1000.0 * c(s, z, y))
    print(f"{name:28s} |grad(1000 L)| / |grad(L)| = {(g1000.norm() / g1.norm()).item():.1f}")
assert torch.allclose(
    body_grad(lambda s, z, y: 1000.0 * official_style_low_rank(z, y)), official[0]
)

# %% [markdown]
# With the base loss added, the official gradient under the scaler is the gradient of
# $\mathcal L_{\text{base}}+\frac{\lambda}{S}\mathcal L_{\text{low-rank}}$ computed correctly:
# exactly the effective weight $\lambda/S$.

# %%
lam = 1.0
official_total = lambda s, z, y: BCELoss()(s, y) + official_style_low_rank(z, y, lambda_=lam)  # noqa: E731
effective = lambda s, z, y: BCELoss()(s, y) + (lam / S0) * low_rank_loss(z, y)  # noqa: E731
same = torch.allclose(body_grad(official_total, scale=S0), body_grad(effective))
print("official (GradScaler, lambda) == correct (lambda / S):", same)
assert same

# %% [markdown]
# ### How small does $\lambda/S$ get over a run?
#
# `GradScaler` (defaults `init_scale` $=2^{16}$, `growth_factor` $=2$, `growth_interval` $=2000$)
# doubles $S$ after every `growth_interval` consecutive steps without an inf/NaN gradient, and
# halves it on an overflow. The reference trains in fp32 (no `autocast`), so overflows are rare;
# assuming none, the scale used at step $t$ (0-based) is
#
# $$
# S_t = 2^{16}\cdot 2^{\lfloor t/2000\rfloor}.
# $$
#
# Check the rule with a real `GradScaler` on a dummy parameter (growth interval 3, 10 steps):


# %%
def scale_rule(t, interval, s0=2.0**16):
    """Loss scale used at step t (0-based) when no step overflows."""
    return s0 * 2.0 ** (np.asarray(t) // interval)


p = nn.Parameter(torch.ones(3, dtype=torch.float64))
sgd, scaler = torch.optim.SGD([p], lr=0.0), torch.amp.GradScaler("cpu", growth_interval=3)
used = []
for t in range(10):
    sgd.zero_grad()
    used.append(scaler.get_scale())  # the scale this step multiplies by
    scaler.scale((p**2).sum()).backward()
    scaler.step(sgd)
    scaler.update()
print("GradScaler:", [int(s) for s in used])
print("rule      :", [int(s) for s in scale_rule(range(10), 3)])
assert np.array_equal(used, scale_rule(range(10), 3))

# %% [markdown]
# The reference schedule: 26 epochs (`Stop_epoch=25`) of 1283 steps (COCO, batch 64):

# %%
epochs, steps_per_epoch = 26, 1283
t = np.arange(epochs * steps_per_epoch)  # every optimiser step
S = scale_rule(t, 2000)
lam_eff = lam / S
for e in [0, 1, 5, 10, 25]:
    s_end = S[(e + 1) * steps_per_epoch - 1]
    print(f"end of epoch {e:2d}: S = 2^{int(np.log2(s_end))}, lambda_eff = {lam / s_end:.3e}")
print(f"mean lambda_eff over the run: {lam_eff.mean():.3e}")

# %%
fig, ax = plt.subplots(figsize=(7, 3.5))
ax.semilogy(t / steps_per_epoch, lam_eff, label=r"official script: $\lambda/S_t$")
ax.axhline(lam, color="C1", ls="--", label=r"intended $\lambda=1$ (ours)")
ax.set(
    xlabel="epoch",
    ylabel=r"effective weight of $\mathcal{L}_{CLML}$",
    title="Effective CLML weight under GradScaler\n(26 epochs x 1283 steps, no overflow)",
)
ax.legend(loc="center right")
plt.show()

# %% [markdown]
# Over the whole run the CLML term weighs between $1.5\times10^{-5}$ and $2.3\times10^{-10}$ of
# what the command line says. At initialisation the summed BCE is about $NC\ln2\approx3549$ and its
# gradient on $\mathbf Z$ is already about 70 times that of the CLML term at $\lambda=1$ (section 4
# below); at $\lambda/S$ the CLML share of the gradient is of the order of $10^{-7}$ or less.
#
# **Our decision** (docs/method.md §6 Q2): the subgradient is carried by autograd (`nuclear_norm`
# and
# `low_rank_loss` build a surrogate whose gradient is $\mathbf U_r\mathbf V_r^\top$), so it is
# multiplied by `grad_output` like every other gradient, and `GradScaler` is harmless.
# `official_style_low_rank` exists only for this audit.

# %% [markdown]
# ## 2. Where $\lambda$ sits: 2022 vs 2023 code (docs/method.md §5.4)
#
# $$
# \text{2023: }\ \frac{\lambda}{N}\Big(\sum_k\max(\Delta,\lVert\mathbf Z_k\rVert_*)-\lVert\mathbf
# Z\rVert_*\Big),
# \qquad
# \text{2022: }\ \frac{\lambda}{N}\Big(\sum_k\max(\Delta,\lVert\mathbf
# Z_k\rVert_*)-\lambda\lVert\mathbf Z\rVert_*\Big).
# $$
#
# From scratch (singular values from `torch.linalg.svdvals`) and through the library's switch
# `CLMLLoss(lambda_placement=...)`:

# %%
g = torch.Generator().manual_seed(2)
N, D, C = 32, 48, 8
Z = torch.relu(torch.randn(N, D, generator=g, dtype=torch.float64))  # (N, D) post-ReLU features
Y = (torch.rand(N, C, generator=g) < 0.3).double()  # (N, C)
Y[torch.arange(N), torch.randint(0, C, (N,), generator=g)] = 1  # every image has a label
logits = torch.zeros(N, C, dtype=torch.float64)  # only the CLML part is compared here
local = sum(max(1.0, torch.linalg.svdvals(Z[Y[:, k] == 1]).sum().item()) for k in range(C))
glob = torch.linalg.svdvals(Z).sum().item()
print(f"sum_k max(1, ||Z_k||_*) = {local:.4f}   ||Z||_* = {glob:.4f}")

# %%
rows = []
for lam_ in [0.1, 0.5, 1.0, 2.0, 5.0]:
    scratch = {"2023": lam_ * (local - glob) / N, "2022": lam_ * (local - lam_ * glob) / N}
    lib = {
        p: CLMLLoss("BCE", lambda_=lam_, use_correction=False, lambda_placement=p)
        .forward_parts(logits, Z, Y)
        .low_rank.item()
        for p in ("2023", "2022")
    }
    assert all(np.isclose(scratch[p], lib[p], rtol=1e-10) for p in lib)
    rows.append((lam_, f"{lib['2023']:.4f}", f"{lib['2022']:.4f}"))
print(pd.DataFrame(rows, columns=["lambda", "2023 form", "2022 form"]).to_string(index=False))
print("identical at lambda = 1:", rows[2][1] == rows[2][2])
assert rows[2][1] == rows[2][2]

# %% [markdown]
# The two agree only at $\lambda=1$. For $\lambda<1$ the 2022 form pushes *less* (global term
# weighted $\lambda^2$), for $\lambda>1$ more. Worse, the 2022 form need not be bounded below.
# Above the floor it is positively 1-homogeneous in $\mathbf Z$, so it is bounded below over all
# features if and only if
#
# $$
# \lambda\ \le\ \rho^\ast(\hat{\mathbf Y})=\inf_{\mathbf Z\ne0}\frac{\sum_k\lVert\mathbf
# Z_k\rVert_*}{\lVert\mathbf Z\rVert_*}:
# $$
#
# if some $\mathbf Z$ has a ratio below $\lambda$, the loss at $c\mathbf Z$ falls linearly in $c$
# (the floor only adds a constant); if none has, the bracket is never negative. The ratio of one
# particular batch ($421.94/120.28\approx3.5$ above) is *not* the threshold: the infimum runs over
# every $\mathbf Z$ with these label sets. It equals $m_{\min}=\min_i m_i$, the fewest labels
# carried by one image ($m_i\ge1$ for all $i$):
#
# * a $\mathbf Z$ whose only non-zero row is that of an image with $m_{\min}$ labels has ratio
#   $m_{\min}$ (each of its labels has $\lVert\mathbf Z_k\rVert_*=\lVert\mathbf z_i\rVert$);
# * with $\mathbf D_k$ the 0/1 diagonal matrix of the rows of label $k$, $\sum_k\mathbf
#   D_k=\operatorname{diag}(m)$, so the triangle inequality gives
#   $\sum_k\lVert\mathbf Z_k\rVert_*=\sum_k\lVert\mathbf D_k\mathbf
#   Z\rVert_*\ge\lVert\operatorname{diag}(m)\mathbf Z\rVert_*$;
# * and since $\mathbf Z=\operatorname{diag}(1/m)\operatorname{diag}(m)\mathbf Z$ and
#   $\lVert\mathbf A\mathbf B\rVert_*\le\lVert\mathbf A\rVert_2\lVert\mathbf B\rVert_*$ (spectral
#   norm times nuclear norm),
#   $\lVert\mathbf Z\rVert_*\le\lVert\operatorname{diag}(1/m)\rVert_2\,
#   \lVert\operatorname{diag}(m)\mathbf Z\rVert_*=\lVert\operatorname{diag}(m)\mathbf
#   Z\rVert_*/m_{\min}$.
#
# Together: $\sum_k\lVert\mathbf Z_k\rVert_*\ge m_{\min}\lVert\mathbf Z\rVert_*$ for every
# $\mathbf Z$, with equality for the one-row $\mathbf Z$ above. The next cell checks both
# inequalities on the batch and on random features.
#
# So the 2022 form is bounded below exactly for $\lambda\le m_{\min}$. That holds always for
# $\lambda\le1$, and for *no* $\lambda>1$ as soon as one image of the batch carries a single label
# (the usual case: the COCO 40 % split has 1.17 labels per image). In a batch where every image
# carries the same two labels it holds up to $\lambda=2$ (there $\mathbf Z_1=\mathbf Z_2=\mathbf
# Z$ and the ratio is 2 for every $\mathbf Z$). The 2023 form stays $\ge0$ whenever every image
# has a label (docs/method.md §2.3).
#
# Measured on the batch above, which has single-label images: at $\lambda=2$, below its own ratio
# 3.5, the 2022 value is positive at $\mathbf Z$ but falls without limit along the features that
# keep only a single-label image's row; and on a batch where every image carries the same two
# labels, $\lambda=1.9$ stays bounded while $\lambda=2.1$ does not.


# %%
def low_rank_2022(Z, Y, lam):
    """The 2022 form from singular values (lambda inside and on the global term), float64."""
    nuc = lambda A: torch.linalg.svdvals(A).sum().item() if len(A) else 0.0  # noqa: E731
    local = sum(max(1.0, nuc(Z[Y[:, k] == 1])) for k in range(Y.shape[1]))
    return lam * (local - lam * nuc(Z)) / Z.shape[0]


m = Y.sum(1)  # (N,) labels per image
i_min = int(m.argmin())
Z_one = torch.zeros_like(Z)
Z_one[i_min] = Z[i_min]  # keep only the row of an image with the fewest labels
print(f"fewest labels on one image: m_min = {int(m.min())}; batch ratio at Z: {local / glob:.2f}")
nuc_ = lambda A: torch.linalg.svdvals(A).sum().item()  # noqa: E731
g_try = torch.Generator().manual_seed(20)
for Z_try in [Z, *(torch.randn(N, D, generator=g_try, dtype=torch.float64) for _ in range(5))]:
    sum_k = sum(nuc_(Z_try[Y[:, k] == 1]) for k in range(Y.shape[1]) if Y[:, k].any())
    scaled = nuc_(m[:, None] * Z_try)  # ||diag(m) Z||_*
    assert sum_k >= scaled * (1 - 1e-12) and scaled >= m.min().item() * nuc_(Z_try) * (1 - 1e-12)
print("sum_k ||Z_k||_* >= ||diag(m) Z||_* >= m_min ||Z||_*: holds on Z and 5 random batches")
print(f"lambda = 2, features Z: 2022 form {low_rank_2022(Z, Y, 2.0):.4f}")
for c in [1.0, 10.0, 100.0]:
    print(
        f"lambda = 2, only row {i_min} kept, x {c:5.0f}: 2022 form "
        f"{low_rank_2022(c * Z_one, Y, 2.0):10.4f}"
    )
Y_two = torch.zeros(N, C, dtype=torch.float64)
Y_two[:, :2] = 1  # every image carries labels 0 and 1
for lam_ in (1.9, 2.1):
    vals = [low_rank_2022(c * Z, Y_two, lam_) for c in (1.0, 10.0, 100.0)]
    print(
        f"same two labels everywhere, lambda = {lam_}: features x 1, 10, 100 -> "
        + ", ".join(f"{v:.3f}" for v in vals)
    )
assert (
    low_rank_2022(Z, Y, 2.0) > 0
    and low_rank_2022(100 * Z_one, Y, 2.0) < low_rank_2022(10 * Z_one, Y, 2.0) < 0
)
assert low_rank_2022(100 * Z, Y_two, 1.9) > 0 > low_rank_2022(100 * Z, Y_two, 2.1)

# %% [markdown]
# And the original batch at $\lambda=5$, above its own ratio, simply scaled:

# %%
for c in [1.0, 10.0, 100.0]:
    v = {
        p: CLMLLoss("BCE", lambda_=5.0, use_correction=False, lambda_placement=p)
        .forward_parts(logits, c * Z, Y)
        .low_rank.item()
        for p in ("2023", "2022")
    }
    print(
        f"lambda = 5, features x {c:5.0f}:  2023 form {v['2023']:10.4f}   2022 form "
        f"{v['2022']:10.4f}"
    )

# %% [markdown]
# A $\lambda$ sweep run with the 2022 code and one run with the 2023 code therefore measure
# different objectives. **Our decision** (Q3): default `lambda_placement='2023'`; the 2022 form is
# available for A/B runs.
#
# ## 3. The $\Delta$ floor and absent labels (docs/method.md §5.2, §5.14)
#
# A label $k$ absent from the batch has $\mathbf Z_k$ of shape $(0,d)$ and
# $\lVert\mathbf Z_k\rVert_*=0$, so it contributes $\max(\Delta,0)=\Delta$: a constant
# $\Delta\lambda/N$ in the logged loss, with no gradient. Add three label columns that no image
# carries:

# %%
lam, delta = 0.5, 1.0
Y_more = torch.cat(
    [Y, torch.zeros(N, 3, dtype=torch.float64)], dim=1
)  # (N, C + 3), 3 absent labels
crit = CLMLLoss("BCE", lambda_=lam, delta=delta, use_correction=False)
Za, Zb = Z.clone().requires_grad_(True), Z.clone().requires_grad_(True)
va = crit.forward_parts(torch.zeros(N, C, dtype=torch.float64), Za, Y).low_rank
vb = crit.forward_parts(torch.zeros(N, C + 3, dtype=torch.float64), Zb, Y_more).low_rank
(ga,), (gb,) = torch.autograd.grad(va, Za), torch.autograd.grad(vb, Zb)
print(
    f"logged CLML term rises by {(vb - va).item():.6f};  3 * Delta * lambda / N = "
    f"{3 * delta * lam / N:.6f}"
)
print("gradient unchanged:", torch.allclose(ga, gb))
assert np.isclose((vb - va).item(), 3 * delta * lam / N) and torch.allclose(ga, gb)

# %% [markdown]
# With COCO-like label frequencies a batch of $N=64$ misses a good part of the 80 labels (25 in
# the batch of section 4), so the logged "CLML loss" carries an offset of about
# $25\Delta\lambda/64\approx0.4\lambda$ that no parameter can change, and that varies from batch
# to batch. Compare logged CLML losses only after subtracting it.
#
# The floor also switches off the pull on small labels: a label whose
# $\lVert\mathbf Z_k\rVert_*\le\Delta$ gives no gradient (notebook 03 shows that the floor is what
# keeps the features from collapsing to $\mathbf 0$). A single-image label with
# $\lVert\mathbf z_i\rVert=0.5<\Delta$:

# %%
Zs = Z.clone()
Zs[0] = 0.5 * Zs[0] / Zs[0].norm()  # ||z_0|| = 0.5
Ys = torch.zeros(N, C + 1, dtype=torch.float64)
Ys[:, :C] = Y
Ys[0, C] = 1  # label C is carried by image 0 alone
Zs.requires_grad_(True)
(g_with,) = torch.autograd.grad(low_rank_loss(Zs, Ys), Zs)
(g_without,) = torch.autograd.grad(low_rank_loss(Zs, Ys[:, :C]), Zs)
print("label below the floor adds no gradient:", torch.allclose(g_with, g_without))
assert torch.allclose(g_with, g_without)

# %% [markdown]
# **Our decision** (Q4): keep $\Delta=1$ and the constant for absent labels, as the reference does
# (the offset is logged, never differentiated). Neither the floor nor $1/N$ is in the paper's
# figure; both come from OLÉ.
#
# ## 4. Sum vs mean reduction of the base loss, and the effective $\lambda$ (docs/method.md §2.4)
#
# The reference **sums** the base loss over the $N\times C$ entries. At initialisation
# ($s_{ic}\approx0$, $p_{ic}\approx\tfrac12$) every entry costs $\ln2$:
#
# $$
# \mathcal L_{\text{BCE}}=-\sum_{i,c}\big[y_{ic}\log p_{ic}+(1-y_{ic})\log(1-p_{ic})\big]\approx
# NC\ln2 .
# $$
#
# A batch like the reference's: $N=64$, $C=80$, COCO-like label frequencies, post-ReLU features
# ($D=256$ to keep it quick) and a fresh linear head.

# %%
g = torch.Generator().manual_seed(3)
N, C, D = 64, 80, 256
freq = (
    0.45 * torch.arange(1, C + 1, dtype=torch.float64) ** -0.9
)  # (C,) label frequencies, "person" 0.45
Y = (torch.rand(N, C, generator=g, dtype=torch.float64) < freq).double()  # (N, C)
Z = torch.relu(torch.randn(N, D, generator=g, dtype=torch.float64)).requires_grad_(True)  # (N, D)
head = nn.Linear(D, C).double()
logits = head(Z)  # (N, C)
scratch_bce = F.binary_cross_entropy_with_logits(logits, Y, reduction="sum")
print(
    f"BCE (sum), scratch {scratch_bce.item():.2f}, library {BCELoss()(logits, Y).item():.2f}, "
    f"N C ln2 = {N * C * np.log(2):.2f}"
)
assert torch.allclose(scratch_bce, BCELoss()(logits, Y))
print(
    f"labels per image {Y.sum(1).mean():.2f}; labels absent from the batch "
    f"{(Y.sum(0) == 0).sum().item()}"
)

# %% [markdown]
# The base loss is a few thousand, the CLML term is $O(1)$. What matters for training is their
# gradients with respect to $\mathbf Z$:


# %%
def grad_norm_wrt_Z(loss):
    (gZ,) = torch.autograd.grad(loss, Z, retain_graph=True)
    return gZ.norm().item()


lr_term = low_rank_loss(Z, Y)
for name, L in [
    ("BCE, sum", BCELoss()(logits, Y)),
    ("BCE, mean", BCELoss(reduction="mean")(logits, Y)),
    ("CLML low-rank term (lambda=1)", lr_term),
]:
    print(f"{name:30s} value {L.item():10.4f}   |dL/dZ| {grad_norm_wrt_Z(L):.4e}")

# %% [markdown]
# The sum makes the base gradient $NC=5120$ times larger than the mean does, while the CLML term
# (already divided by $N$) stays the same. So $\lambda$ means different things under the two
# conventions: to keep the reference's balance with a mean-reduced base loss, use
#
# $$
# \lambda_{\text{mean}}=\frac{\lambda_{\text{sum}}}{NC}\qquad(\texttt{equivalent\_lambda}).
# $$
#
# Check: the total gradient under `reduction='mean'` with $\lambda_{\text{mean}}$, times $NC$,
# equals the total gradient under `reduction='sum'` with $\lambda_{\text{sum}}$:

# %%
lam_sum = 1.0
lam_mean = equivalent_lambda(lam_sum, N, C)
print(f"lambda_mean = {lam_sum} / ({N} * {C}) = {lam_mean:.4e}")
L_sum = CLMLLoss("BCE", lambda_=lam_sum, use_correction=False, reduction="sum")(logits, Z, Y)
L_mean = CLMLLoss("BCE", lambda_=lam_mean, use_correction=False, reduction="mean")(logits, Z, Y)
(g_sum,) = torch.autograd.grad(L_sum, Z, retain_graph=True)
(g_mean,) = torch.autograd.grad(L_mean, Z, retain_graph=True)
print(
    "N C * grad(mean, lambda_mean) == grad(sum, lambda_sum):", torch.allclose(N * C * g_mean, g_sum)
)
assert torch.allclose(N * C * g_mean, g_sum) and np.isclose(lam_mean, lam_sum / (N * C))

# %% [markdown]
# A reimplementation that averages the base loss (as most PyTorch code does) and keeps
# `--lambda_ 1.0` gives CLML $5120$ times the weight the reference intended. **Our decision**:
# `reduction='sum'` by default, as the reference; `equivalent_lambda` for the other convention.
#
# ## 5. Four small discrepancies
#
# ### 5a. Dead margin code in the label correction (docs/method.md §5.8)
#
# The official correction first subtracts a margin $m=1$ from the logits of observed positives,
# then thresholds $\sigma(\cdot)>\tau$. Observed positives stay 1 anyway, so the margin never
# changes the result. Rebuilt from that description, with and without the margin, against
# `correct_labels`:


# %%
def official_style_correction(s, y, tau, margin):
    """Margin on observed positives, then sigma > tau turns an entry positive; s, y (N, C)."""
    s = torch.where(y == 1, s - margin, s)  # (N, C) the dead line
    return torch.where(torch.sigmoid(s) > tau, torch.ones_like(y), y)  # (N, C)


g = torch.Generator().manual_seed(4)
s = 2 * torch.randn(64, 12, generator=g)  # (N, C) logits
y = (torch.rand(64, 12, generator=g) < 0.2).float()  # (N, C)
with_m, without_m = (
    official_style_correction(s, y, 0.75, 1.0),
    official_style_correction(s, y, 0.75, 0.0),
)
lib = correct_labels(s, y, tau=0.75, epoch=1)
print(
    "margin 1 == margin 0:",
    torch.equal(with_m, without_m),
    "| == correct_labels:",
    torch.equal(with_m, lib),
)
assert torch.equal(with_m, without_m) and torch.equal(with_m, lib)

# %% [markdown]
# ### 5b. `--use_clml` with `type=bool` (docs/method.md §5.12)
#
# argparse calls `bool(string)`, and every non-empty string is true:

# %%
parser = argparse.ArgumentParser()
parser.add_argument("--use_clml", type=bool, default=False)
for argv in [
    [],
    ["--use_clml", "True"],
    ["--use_clml", "False"],
    ["--use_clml", "0"],
    ["--use_clml", ""],
]:
    print(f"{' '.join(argv) or '(no flag)':20s} -> use_clml = {parser.parse_args(argv).use_clml}")
assert parser.parse_args(["--use_clml", "False"]).use_clml is True

# %% [markdown]
# A baseline launched with `--use_clml False` is a CLML run. Only omitting the flag (or passing an
# empty string) gives the baseline. Our `TrainConfig.use_clml` is a real boolean (papermill's
# `-p use_clml false` is typed).
#
# ### 5c. Inputs without ImageNet normalisation (docs/method.md §5.10)
#
# The reference feeds pixels in $[0,1]$ to torchvision's ImageNet ResNet-101, whose weights were
# trained on $(x-\mu)/\sigma$ with $\mu=(0.485,0.456,0.406)$, $\sigma=(0.229,0.224,0.225)$. The
# first layers therefore see inputs with a shifted mean and a spread several times smaller than
# the one the weights were trained on (shown on uniform pixels):

# %%
mu = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
sigma = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
img = torch.rand(
    3, 448, 448, generator=torch.Generator().manual_seed(5)
)  # uniform pixels in [0, 1]
for name, t_ in [
    ("reference: raw [0, 1]", img),
    ("torchvision: (x - mu) / sigma", (img - mu) / sigma),
]:
    print(
        f"{name:30s} mean {t_.mean():+.3f}  std {t_.std():.3f}  range [{t_.min():+.2f}, "
        f"{t_.max():+.2f}]"
    )

# %% [markdown]
# Fine-tuning (BatchNorm statistics, 26 epochs) absorbs much of this, so it is a protocol
# difference rather than a bug; but pretrained features start off-distribution. **Our decision**:
# `normalize=False` by default, to match the reference; `normalize=True` is one flag away.
#
# ### 5d. An older upload passes `epoch` and `feature` in swapped order
#
# In commit `085ae1fc` of the official repository, `ConLoss_MLML.py` defines
# `CLML.forward(self, logits, targets, feature, epoch, lam)`, while `train_clml.py` calls it as
# `crit_clml(output, target, epoch, feature, lam)`: the epoch number arrives as `feature` and the
# feature tensor as `epoch`. The first thing `forward` does with `epoch` is the start-epoch test
# `if epoch >= self.change_epoch:`. Rebuilt with the same argument order (only the test, the rest
# of the method left out), called as the script calls it:


# %%
def clml_forward_085ae1fc(logits, targets, feature, epoch, lam, change_epoch=1):
    """The argument order and the start-epoch test of that upload's CLML.forward."""
    if epoch >= change_epoch:  # meant for an int epoch
        return "correction on"
    return "correction off"


feature_batch = torch.rand(64, 2048, generator=torch.Generator().manual_seed(6))  # (N, D)
print("intended order:", clml_forward_085ae1fc(s, y, feature_batch, 3, 1.0))
try:
    clml_forward_085ae1fc(s, y, 3, feature_batch, 1.0)  # the order train_clml.py uses
    swapped = "no error"
except RuntimeError as err:
    swapped = f"RuntimeError: {err}"
print("order of the script's call:", swapped)
assert swapped.startswith("RuntimeError: Boolean value of Tensor with more than one")

# %% [markdown]
# With the swapped order, `epoch >= 1` compares every entry of the feature tensor, and `if` on a
# tensor of 64 x 2048 booleans raises, at the first step of training, whatever the epoch. So
# that upload, as committed, cannot train with CLML at all. What we can verify is these two
# lines of that commit; which version of the code produced the paper's numbers, the repository
# does not say. The other sections rebuild the code as docs/method.md §5 reads it.
#
# ## What this means for the paper's reported gains
#
# * The released `train_clml.py` wraps the CLML term in a `Function` whose backward ignores
#   `grad_output`, and trains with `GradScaler`. The CLML gradient is therefore divided by the loss
#   scale $S$: its effective weight is $\lambda/S$, from $1.5\times10^{-5}$ at the first step down
#   to $2.3\times10^{-10}$ at the end of the 26 epochs (section 1). Next to a summed base loss of
#   thousands, that is nothing.
# * The label correction cannot make up for it: the corrected labels feed only the CLML term, not
#   the base loss.
# * So **the released script's "+CLML" runs train almost exactly like the baseline**; the two
#   differ by little more than the randomness of a run. Whatever produced the reported gains
#   (+1.2 mAP on COCO, +1.6 on VOC, +1.3 on NUS-WIDE) **could not have come from this exact
#   script, unless it ran without `GradScaler`** (or with a different backward). We cannot tell
#   which code produced the tables: the body of the paper is not available (docs/method.md §0).
# * The other discrepancies change what "$\lambda=1$" means: the 2022 vs 2023 placement (same
#   only at $\lambda=1$), and the summed base loss (a mean-reduced reimplementation must divide
#   $\lambda$ by $NC$). A `--use_clml False` run is silently a CLML run.
# * `clml_lib` uses the correct gradient, so a `clml_lib` "+CLML" run is **not** a reproduction of
#   the released script. It tests the method as the paper describes it. Judge it by its gain over
#   its own baseline under identical settings (docs/method.md §6 Q14).
#
# ## Summary
#
# * A custom `backward` that ignores `grad_output` breaks the chain rule. Under `GradScaler` it
#   divides the CLML gradient by $S$ ($2^{16}$, doubling every 2000 steps), and it ignores any outer
#   weight. Ours carries the gradient through autograd and is unaffected.
# * $\lambda$ placement: the 2022 and 2023 code agree only at $\lambda=1$; the 2022 form is
#   bounded below exactly for $\lambda\le\min_i m_i$ (the fewest labels on one image of the
#   batch), so for no $\lambda>1$ once a batch holds a single-label image.
# * Absent labels add the constant $\Delta\lambda/N$ to the logged loss, with no gradient; labels
#   under the floor are not pulled.
# * Summing the base loss makes it $NC$ times larger than averaging it:
#   $\lambda_{\text{mean}}=\lambda_{\text{sum}}/(NC)$.
# * The margin in the correction is dead code, `type=bool` parses `"False"` as True, and inputs are
#   not normalised.
#
# ## Exercises
#
# Each exercise has a checker: replace `None` by your answer and run the cell. Written solutions
# and code: `notebooks/solutions/ch06.md` and `ch06.py`.
#
# 1. Fix the official structure: write a `torch.autograd.Function` whose `forward(ctx, Z, Y)`
#    computes the low-rank term ($\Delta=1$, $\lambda=1$) and stores its subgradient, and whose
#    `backward` returns the right gradient whatever `grad_output` is (one token differs from
#    `IgnoresGradOutput`). Which checks of section 1 would change?

# %%
from clml_lib.exercises import ch06

answer_1 = None  # a torch.autograd.Function subclass
_ = ch06.check_fixed_backward(answer_1)

# %% [markdown]
# 2. Give, as a function `f(Y)` of a 0/1 label matrix with at least one label per image, the largest
#    $\lambda$ for which the 2022 form is bounded below over all features, and prove it (section 2).

# %%
answer_2 = None  # a function f(Y) -> lambda*
_ = ch06.check_bounded_lambda(answer_2)

# %% [markdown]
# 3. The reference's argparse default batch is 16 (its README uses 64). Which $\lambda$ for a
#    mean-reduced base loss keeps the balance of $\lambda=1$ with a summed one at $N=16$, $C=80$?
#    What else changes in the CLML term when $N$ drops from 64 to 16?

# %%
answer_3 = None  # lambda for reduction='mean'
_ = ch06.check_equivalent_lambda_n16(answer_3)
