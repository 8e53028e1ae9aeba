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
# # 01 · False-negative mining: missing labels, false negatives and label correction
#
# **What you will learn**
#
# 1. How a missing-label split is simulated on the teaching set (`simulate_missing`, the
#    "40 % left" setting of the paper's COCO experiments, made by the released files' per-image
#    recipe) and what it hides.
# 2. Why the naive choice of negatives for a contrastive loss (every unobserved label of another
#    image is a negative) turns missing positives into **false negatives**, counted per label and
#    in total, per batch of 64 and over the dataset.
# 3. The label-correction rule of CLML (docs/method.md §2.1): mine an unobserved label as
#    positive when the classifier is confident, $\sigma(s_{ik})>\tau$. Every detail: strict $>$,
#    start epoch, detached, recomputed at every step, only ever adds positives.
# 4. What a classifier trained with BCE on assume-negative labels actually estimates: the
#    expected BCE, its minimiser $P(y^{\text{obs}}=1\mid x)\approx\rho\,P(t=1\mid x)$ with $\rho$
#    the keep rate, the single-label exception, a measurement of it, and what it implies for the
#    choice of $\tau$.
# 5. How good the mined labels are: precision and recall against the hidden truth, as the
#    threshold $\tau$ varies and as training progresses (a short from-scratch run on the teaching
#    set with `clml_lib.train.fit`).
# 6. The rule built from scratch in a few lines, asserted equal to
#    `clml_lib.losses.correct_labels` and `mine_false_negatives` for the 1/0 and the 1/0/-1
#    encodings.
#
# **Prerequisites**: multi-label classification with a sigmoid per label; binary cross-entropy.
#
# **Runs in** about 1–2.5 minutes on 2 CPU cores, most of it the short training run of section 4
# (the measured time, date and machine load: notebooks/run_times.json). Training uses one thread.

# %%
from clml_lib.nb import setup_notebook

setup_notebook(seed=0, threads=1)  # 1 thread: much faster than 2 on a busy shared machine

import json
import shutil

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F_nn
from sklearn.metrics import roc_auc_score

from clml_lib.data import (
    TeachingMultiLabel,
    keep_counts,
    simulate_missing,
    split_stats,
    to_unknown_encoding,
)
from clml_lib.exercises import ch01
from clml_lib.losses import correct_labels, mine_false_negatives
from clml_lib.models import build_model
from clml_lib.paths import resolve
from clml_lib.train import TrainConfig, fit, load_config
from clml_lib.train.datasets import build_run_data

# %% [markdown]
# ## 1. Missing labels on the teaching set
#
# The teaching set (`TeachingMultiLabel`) draws 32 × 32 images of coloured shapes, 12 classes,
# with full ground truth $\mathbf t_i\in\{0,1\}^{12}$. The paper's COCO split files were made by
# dropping positive labels image by image (docs/method.md §3.1): in the 40left file an image with
# $n$ positives keeps $\lfloor n/5\rfloor+1$ of them, drawn at random, which left 39.9 % of COCO's
# positives. `simulate_missing(labels, '40left', seed)` follows the same recipe
# (`keep_counts`) and never invents a label. The teaching images carry at most four labels, so
# here every image keeps exactly one: fewer than 40 % of the positives (printed below). The
# result $\mathbf y_i$ is what training sees, stored as **1/0**: 1 = observed positive, 0 =
# negative *or missing* (the reference's "assume negative" convention).

# %%
train_set = TeachingMultiLabel("train", seed=0)
T_full = train_set.labels  # (N, C) hidden truth t
Y_obs = simulate_missing(T_full, "40left", seed=0)  # (N, C) observed y, 1/0
classes = train_set.classes
stats = split_stats(T_full, Y_obs, classes)
print(
    f"images {stats.images}, positives {stats.positives} ({stats.positives_per_image:.2f} per "
    "image)"
)
print(
    f"observed {stats.observed_positives} ({stats.observed_per_image:.2f} per image, kept "
    f"{stats.kept_fraction:.3f}); "
    f"invented {stats.invented}, images left without a label {stats.observed_empty_images}"
)
missing = (T_full == 1) & (Y_obs == 0)  # (N, C) the hidden positives
print(f"missing positives {int(missing.sum())}")
n_max = int(T_full.sum(1).max())
print(f"at most {n_max} labels per image: each keeps {keep_counts([n_max], '40left')[0]} of them")
assert (Y_obs <= T_full).all() and (Y_obs.sum(1) == 1).all() and stats.kept_fraction < 0.4

# %%
fig, axes = plt.subplots(1, 6, figsize=(15, 3.4))
for ax, i in zip(axes, range(6)):
    ax.imshow(train_set.images[i].permute(1, 2, 0).numpy())
    seen = [c for c, t, y in zip(classes, T_full[i], Y_obs[i]) if y == 1]
    hidden = [c for c, t, y in zip(classes, T_full[i], Y_obs[i]) if t == 1 and y == 0]
    ax.set_title("seen: " + ", ".join(seen) + "\nhidden: " + (", ".join(hidden) or "-"), fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
fig.suptitle("teaching images: observed labels (seen) and the labels 40left hides (hidden)")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 2. Naive negatives turn missing positives into false negatives
#
# A contrastive loss needs, for an anchor $i$ and each label $k$ it carries, a set of negatives
# (notebook 02). The naive choice, and the reference's convention, is **assume-negative**: every
# image $j$ with $y_{jk}=0$ is a negative of label $k$. But $y_{jk}=0$ also holds when
# $t_{jk}=1$ and the label is merely missing: such a $j$ is a **false negative**, and the loss
# pushes the anchor away from an image that truly shares label $k$ with it.
#
# Over the dataset: the share of the assumed negatives of each label that are really positives.

# %%
assumed_neg = Y_obs == 0  # (N, C) what assume-negative calls negative
fn_share = missing.sum(0) / assumed_neg.sum(0)  # (C,) false negatives among the "negatives"
print(
    f"assumed negatives {int(assumed_neg.sum())}, of which false {int(missing.sum())} "
    f"({missing.sum() / assumed_neg.sum():.3f})"
)
for c, s, m in zip(classes, fn_share.tolist(), missing.sum(0).tolist()):
    print(f"  {c:<11} {m:4d} missing  ->  {s:.3f} of its negatives are false")

# %% [markdown]
# Now a realistic batch of $N=64$ (the reference batch size). Within one batch, a missing
# positive $(j,k)$ is a false negative **for every anchor of the batch that carries $k$**, so the
# number of (anchor, label, false negative) triples is
# $\sum_k |\{i:y_{ik}=1\}|\cdot|\{j:y_{jk}=0,\ t_{jk}=1\}|$. We count over one epoch of shuffled
# batches.

# %%
perm = torch.randperm(len(T_full), generator=torch.Generator().manual_seed(0))
per_batch = []  # rows: missing entries, anchor-label pairs, false-negative triples, pairs hit
per_label_triples = torch.zeros(len(classes))
for b in perm.split(64):
    y, m = Y_obs[b], missing[b]  # (64, C)
    triples = y.sum(0) * m.sum(0)  # (C,) anchors carrying k x missing positives of k
    pairs_hit = (y * (m.sum(0) > 0)).sum()  # anchor-label pairs with >= 1 false negative
    per_batch.append([m.sum(), y.sum(), triples.sum(), pairs_hit])
    per_label_triples += triples
per_batch = torch.tensor(per_batch, dtype=torch.float64)  # (batches, 4)
mb = per_batch.mean(0)
print(f"per batch of 64 (mean over {len(per_batch)} batches):")
print(f"  missing positives in the batch        {mb[0]:.1f}")
print(f"  (anchor, label) pairs                 {mb[1]:.1f}")
print(f"  (anchor, label, false negative) triples {mb[2]:.1f}")
print(f"  pairs with at least one false negative {mb[3] / mb[1]:.3f}")

# %%
fig, axes = plt.subplots(1, 2, figsize=(13, 4))
x = np.arange(len(classes))
axes[0].bar(x, fn_share.numpy(), color="tab:red")
axes[0].set(
    title="dataset: share of assumed negatives that are missing positives",
    ylabel="false negatives / assumed negatives",
)
axes[1].bar(x, (per_label_triples / len(per_batch)).numpy(), color="tab:purple")
axes[1].set(
    title="per batch of 64: (anchor, label, false negative) triples",
    ylabel="triples per batch (mean)",
)
for ax in axes:
    ax.set_xticks(x, classes, rotation=45, ha="right")
    ax.set_xlabel("label $k$")
plt.tight_layout()
plt.show()

# %% [markdown]
# Every (anchor, label) pair of a batch has some false negatives among its negatives: with one
# label left per image, the naive negative sets of a contrastive loss are polluted everywhere.
#
# ## 3. Label correction (docs/method.md §2.1)
#
# CLML's remedy is to trust the classifier where it is confident. With logits $s_{ik}$ (the
# model's own predictions, recomputed at every step), the corrected labels are
#
# $$
# \hat y_{ik}=\begin{cases}1,& y_{ik}=1\\[2pt] 1,& y_{ik}=0\ \wedge\ e\ge e_0\ \wedge\
# \sigma(s_{ik})>\tau\\[2pt] 0,&\text{otherwise}\end{cases}
# $$
#
# Each detail is a decision of the official code, which `clml_lib` keeps (docs/method.md §2.1
# and §6 Q6):
#
# * **strict $>$** against $\tau$ (default $\tau=0.75$; 0.7 / 0.8 also appear in the code);
# * **start epoch** $e_0=1$ with $e$ the 0-based epoch: no correction in the first epoch, when the
#   classifier is still random;
# * **recomputed** from the current logits at every iteration, nothing stored;
# * **detached**: $\hat{\mathbf Y}$ is a constant for the backward pass (no gradient through the
#   threshold);
# * **only adds positives**: an observed 1 is never removed;
# * $\hat{\mathbf Y}$ feeds **only the CLML term**; the base loss keeps $\mathbf y$ (option
#   `correct_base_targets=True` changes that, docs/method.md §6 Q1). The code's margin shift of
#   observed
#   positives has no effect on the rule and is left out.
#
# A *mined* label is an entry with $y_{ik}=0$ and $\hat y_{ik}=1$. Its **precision** is the share of
# mined labels that are true ($t_{ik}=1$); its **recall** the share of missing positives that
# were mined. The rule in a few lines, for both encodings (with 1/0/-1 labels only the unknown
# $-1$ entries are candidates, and a 0 is a *known* negative that is never flipped):


# %%
def my_mine(logits, labels, tau, epoch, start_epoch=1):
    """Scratch label correction: (corrected 0/1 float (N, C), mined bool (N, C))."""
    with torch.no_grad():  # detached: Y_hat is a constant for backward
        cand = labels == -1 if (labels == -1).any() else labels == 0  # (N, C) may be mined
        active = epoch >= start_epoch  # no mining before the start epoch
        mined = cand & (torch.sigmoid(logits) > tau) & active  # (N, C) strict >
        return ((labels == 1) | mined).float(), mined


def precision_recall(mined, labels, truth):
    """Precision and recall of mined labels against the hidden truth (NaN when undefined)."""
    hits = (mined & (truth == 1)).sum().item()
    n_missing = ((labels != 1) & (truth == 1)).sum().item()
    return hits / max(mined.sum().item(), 1) if mined.any() else float("nan"), hits / n_missing


# %% [markdown]
# ## 4. A short run from scratch
#
# How good is $\sigma(s_{ik})>\tau$ as a detector of missing positives? That depends on the
# classifier, so we train one on the teaching set: a tiny CNN trained from scratch (32 px,
# 40 % left, BCE + CLML with correction at the reference $\tau=0.75$) for 6 epochs with a large
# learning rate. It is a small demonstration model, not the teaching regime of notebooks 04 and
# 05, which fine-tunes a pretrained small ResNet (docs/teaching_regime.md). Training goes
# through `clml_lib.train.fit` only. We stop it after every epoch (`stop_epoch`). Each call
# resumes from the checkpoint of the previous one, and a resumed run follows exactly the same
# trajectory. After each stop we load the raw model's weights from `checkpoint.pt` to score its
# predictions on the training images. `verbose=False`: one summary line per call.

# %%
out_dir = resolve("runs/notebooks/01_false_negative_mining")
shutil.rmtree(out_dir, ignore_errors=True)  # start from scratch every time
cfg = TrainConfig(
    dataset="teaching",
    setting="40left",
    split_seed=0,
    base_loss="BCE",
    use_clml=True,
    use_correction=True,
    tau=0.75,
    start_epoch=1,
    epochs=6,
    batch_size=64,
    image_size=32,
    lr=3e-3,
    ema_decay=0.99,
    backbone="tiny_cnn",
    weights_path="",  # random initialisation
    num_train_images=0,  # the whole embedded training set
    augment=False,
    device="cpu",
    seed=0,
    out_dir=str(out_dir),
    progress=False,
    verbose=False,
    resume=True,
)
regime = load_config(resolve("params/teaching.yaml"))  # the teaching regime of notebooks 04-05
assert (cfg.backbone, cfg.weights_path) != (regime.backbone, regime.weights_path)  # not that
data = build_run_data(cfg)  # the same training images and observed labels that fit uses
X_train = torch.stack([data.train[i][0] for i in range(len(data.train))])  # (N_train, 3, 32, 32)
Y_tr, T_tr = data.observed, data.truth  # (N_train, C) observed y and hidden truth t
X_test = torch.stack([data.test[i][0] for i in range(len(data.test))])  # (N_test, 3, 32, 32)
T_te = torch.stack([data.test[i][1] for i in range(len(data.test))])  # (N_test, C) full labels
print(
    f"training images {len(X_train)}, observed {int(Y_tr.sum())}, "
    f"missing {int(((Y_tr == 0) & (T_tr == 1)).sum())}; test images {len(X_test)}"
)

# %%
# NBVAL_IGNORE_OUTPUT
stops = list(range(cfg.epochs))  # 0, 1, ..., 5
logits_at = {}  # epoch -> (N_train, C) logits of the raw model at the end of that epoch
for e in stops:
    fit(cfg.replace(stop_epoch=e))  # prints one summary line
    # build_model reads the raw weights (checkpoint["model"]; the correction uses the raw model)
    model = build_model(cfg.backbone, len(classes), out_dir / "checkpoint.pt").eval()
    with torch.no_grad():
        logits_at[e] = torch.cat([model(xb)[0] for xb in X_train.split(256)])  # (N_train, C)

# %% [markdown]
# First, what the correction did **during** training: `fit` scores the labels mined in every
# step (model of that step, $\tau=0.75$) against the hidden truth and writes them to
# `metrics.json` (`epochs[e].mined`; no mining in epoch 0, since $e_0=1$).

# %%
# NBVAL_IGNORE_OUTPUT
metrics = json.loads((out_dir / "metrics.json").read_text())
for rec in metrics["epochs"]:
    m = rec["mined"]
    p = "n/a" if m["precision"] is None else f"{m['precision']:.3f}"
    print(
        f"epoch {rec['epoch']}: mined {m['count']:4d} labels over the epoch (precision {p}, "
        f"recall {m['recall']:.4f}) | test mAP {rec['test']['mAP']:.1f}"
    )
mined_during_training = sum(rec["mined"]["count"] for rec in metrics["epochs"])

# %% [markdown]
# At the reference threshold the rule mines (almost) **nothing** in this run. The histogram of
# the last model's probabilities on the training images shows why: every score, even on the
# observed positives, stays far below 0.75.

# %%
P_last = torch.sigmoid(logits_at[stops[-1]])  # (N_train, C)
groups = {
    "observed positives": Y_tr == 1,
    "missing positives": (Y_tr == 0) & (T_tr == 1),
    "true negatives": T_tr == 0,
}
fig, ax = plt.subplots(figsize=(8, 4))
bins = np.linspace(0, 1, 51)
for (name, mask), c in zip(groups.items(), ["tab:green", "tab:red", "tab:gray"]):
    ax.hist(
        P_last[mask].numpy(), bins=bins, density=True, histtype="step", lw=2, color=c, label=name
    )
ax.axvline(0.75, color="k", ls="--", label=r"reference $\tau=0.75$")
ax.set(
    xlabel=r"predicted probability $\sigma(s_{ik})$",
    ylabel="density",
    title=f"last model (end of epoch {stops[-1]}) on its training images",
)
ax.legend()
plt.show()

# %%
# NBVAL_IGNORE_OUTPUT
for name, mask in groups.items():
    q = torch.quantile(P_last[mask], torch.tensor([0.5, 0.9, 0.99]))
    print(f"{name:<19} median {q[0]:.3f}, 90% {q[1]:.3f}, 99% {q[2]:.3f}")
assert float(P_last.max()) < 0.75 and mined_during_training <= 10

# %% [markdown]
# ## 5. What BCE learns from assume-negative labels
#
# Why are the scores so low? Not because the BCE is *summed* (a sum and a mean have the same
# minimiser), and not only because the run is short. Under assume-negative labels the target of a
# label is $y^{\text{obs}}$, which is 1 only if the label is present **and** was kept. Fix an image
# $x$ and a label $k$ and write
#
# $$
# q(x)=P(y^{\text{obs}}_k=1\mid x)=\rho\,P(t_k=1\mid x),
# $$
#
# with $\rho$ the **keep rate**: the probability that a present label is observed (about 0.4 in
# COCO's 40left file; per image below). The expected BCE of a score $p$ for this label is
#
# $$
# R(p)=\mathbb E\big[-y^{\text{obs}}\log p-(1-y^{\text{obs}})\log(1-p)\mid x\big]=-q\log
# p-(1-q)\log(1-p),
# \qquad R'(p)=\frac{p-q}{p(1-p)} .
# $$
#
# $R$ is strictly convex and $R'$ vanishes at $p=q$ only, so **the BCE optimum is
# $p^\ast(x)=\rho\,P(t_k=1\mid x)$**: a classifier fitted with BCE estimates the probability that a
# label is *observed*, not that it is *present*. A label that is surely present scores about
# $\rho$, whether it was observed or is missing (the model cannot tell them apart from the image).
#
# **The single-label exception.** The simulation keeps at least one label per image, so the keep
# rate is not one number. An image with one true label always keeps it ($\rho(1)=1$); an image
# with more labels keeps a smaller share of them, and the more labels, the less it keeps (the
# cell below prints each share and asserts both claims). With $m(x)$ the number of true labels,
# $p^\ast(x)=\rho(m(x))\,P(t_k=1\mid x)$ when $m$ can be read from the image. In the `single`
# setting $\rho(m)=1/m$, and so it is under 40left on the teaching set (one label kept per
# image). Single-label images have nothing missing: the only scores that the
# optimum lets approach 1 are those of the images where there is nothing to mine.
#
# The keep rates of the training set, per number of true labels:

# %%
m_tr = T_tr.sum(1).long()  # (N_train,) true labels per image
keep_40 = {
    int(k): float(Y_tr[m_tr == k].sum() / T_tr[m_tr == k].sum()) for k in m_tr.unique().tolist()
}
pooled = float(Y_tr.sum() / T_tr.sum())
print("40left keep rate rho(m):", ", ".join(f"m={k}: {r:.2f}" for k, r in keep_40.items()))
print(
    "share of their labels that images lose:",
    ", ".join(f"m={k}: {1 - r:.0%}" for k, r in keep_40.items()),
)
print(
    f"pooled keep rate {pooled:.2f}; "
    f"images with one true label {int((m_tr == 1).sum())} of {len(m_tr)}"
)
rates = [keep_40[k] for k in sorted(keep_40)]  # rho(1), rho(2), ...
assert keep_40[1] == 1.0 and all(b < a for a, b in zip(rates, rates[1:]))  # more labels, less kept

# %% [markdown]
# **Measuring it.** The CNN above is far from converged, so its scores cannot show the optimum.
# A model that *does* reach the BCE optimum of its family: a linear classifier on frozen features
# (the last CNN's 96-d features, standardised), fitted to convergence with L-BFGS (a convex
# problem). We fit it four times on the same training images, with the labels of `full`,
# `75left`, `40left` and `single` (simulated from the same truth), and score the **test**
# images. If the optimum is $\rho\,P(t=1\mid x)$, the score of a true positive under a setting,
# divided by its score under full labels, should be about the keep rate of its image.

# %%
# NBVAL_IGNORE_OUTPUT
# the features come from the trained CNN, whose last bits depend on the CPU's
# float kernels, and the ratios move by a few hundredths between CPUs; the asserts check what the
# text below says, on every CPU
with torch.no_grad():
    F_tr = torch.cat([model(xb)[1] for xb in X_train.split(256)]).double()  # (N_train, D)
    F_te = torch.cat([model(xb)[1] for xb in X_test.split(256)]).double()  # (N_test, D)
mu, sd = F_tr.mean(0), F_tr.std(0) + 1e-6  # standardise with training statistics


def fit_linear_bce(F, Y, weight_decay=1e-3):
    """Linear BCE classifier on features F (N, D), targets Y (N, C), fitted to convergence."""
    X = (F - mu) / sd
    W = torch.zeros(F.shape[1], Y.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros(Y.shape[1], dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS(
        [W, b],
        max_iter=300,
        line_search_fn="strong_wolfe",
        tolerance_grad=1e-9,
        tolerance_change=1e-12,
    )

    def closure():
        opt.zero_grad()
        loss = F_nn.binary_cross_entropy_with_logits(X @ W + b, Y.double(), reduction="sum")
        loss = loss + weight_decay * (W**2).sum()  # a little ridge: a finite optimum
        loss.backward()
        return loss

    opt.step(closure)
    return lambda F2: torch.sigmoid(((F2 - mu) / sd) @ W.detach() + b.detach())  # (n, C)


m_te = T_te.sum(1).long()  # (N_test,)
scores, keep = {}, {}  # setting -> (N_test, C) test scores; setting -> {m: keep rate}
for setting in ("full", "75left", "40left", "single"):
    Y_s = simulate_missing(T_tr, setting, seed=0)  # (N_train, C)
    scores[setting] = fit_linear_bce(F_tr, Y_s)(F_te)
    keep[setting] = {
        int(k): float(Y_s[m_tr == k].sum() / T_tr[m_tr == k].sum()) for k in m_tr.unique().tolist()
    }
rows = []
for setting in ("75left", "40left", "single"):
    for k in sorted(keep[setting]):
        pos = (m_te == k)[:, None] & (T_te == 1)  # true positives of test images with k labels
        ratio = float(scores[setting][pos].mean() / scores["full"][pos].mean())
        rows.append((setting, k, keep[setting][k], float(scores[setting][pos].mean()), ratio))
print(
    f"{'setting':<7} {'m':>2} {'keep rate':>9} {'mean score':>10} {'score / full-label score':>25}"
)
for setting, k, r, sc, ratio in rows:
    print(f"{setting:<7} {k:>2} {r:>9.2f} {sc:>10.3f} {ratio:>25.2f}")
lossy = np.array([(r, ratio) for _, k, r, _, ratio in rows if r < 1])  # (n, 2) keep, ratio
kept_all = [(s_, k, ratio) for s_, k, r, _, ratio in rows if r == 1]  # images losing nothing
gap = np.abs(lossy[:, 1] - lossy[:, 0]).max()
print(f"images that lose labels: largest |ratio - keep rate| {gap:.2f}")
print(
    "images that keep all their labels (keep rate 1), ratio:",
    ", ".join(f"{s_} m={k} {ratio:.2f}" for s_, k, ratio in kept_all),
)
pos_multi = (m_te >= 2)[:, None] & (T_te == 1)  # true positives of multi-label test images
above = {s_: float((scores[s_][pos_multi] > 0.75).float().mean()) for s_ in scores}
print(
    "share of those true positives scored above 0.75:",
    ", ".join(f"{s_} {a:.3f}" for s_, a in above.items()),
)
assert gap < 0.15  # the optimum tracks the keep rate
ratio_of = {(s_, k): ratio for s_, k, _, _, ratio in rows}
assert all(ratio < 0.95 for s_, k, ratio in kept_all if k >= 2)  # below 1 all the same
assert all(
    ratio_of[s_, 1] < 0.8 and abs(ratio_of[s_, 1] - ratio_of[s_, 2]) < 1 - ratio_of[s_, 1]
    for s_ in ("40left", "single")
)
assert above["40left"] < 0.05 and above["single"] < 0.05 and above["full"] > 5 * above["40left"]

# %%
fig, ax = plt.subplots(figsize=(5.5, 4.5))
for setting, mk in zip(("75left", "40left", "single"), ("o", "s", "^")):
    pts = [(r, ratio, k) for s_, k, r, _, ratio in rows if s_ == setting]
    ax.scatter([p[0] for p in pts], [p[1] for p in pts], marker=mk, s=50, label=setting)
    for r, ratio, k in pts:
        ax.annotate(f"m={k}", (r, ratio), xytext=(4, -10), textcoords="offset points", fontsize=8)
ax.plot([0, 1], [0, 1], color="0.5", ls=":", label=r"score ratio = keep rate $\rho(m)$")
ax.set(
    xlabel=r"keep rate $\rho(m)$ of the images with $m$ true labels",
    ylabel="score of true positives / score with full labels",
    title="BCE optimum under assume-negative",
    xlim=(0, 1.05),
    ylim=(0, 1.05),
)
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# For the images that lose labels ($\rho(m)<1$) the measured ratio sits close to the keep rate,
# in every setting (within about 0.1, printed above): the scores of true positives are scaled
# down by $\rho(m)$, as the derivation says. The images that keep all their labels ($\rho(m)=1$:
# one-label images everywhere, two-label images under 75left) score below their full-label
# scores all the same. Under 40left and `single` the one-label images' ratio is far below 1,
# nearer to that of the two-label images than to 1. The exception holds *only if the image
# reveals $m$*, and these features barely tell a one-shape image from a two-shape one, so the
# classifier gives them scores close to those of the images they resemble.
#
# **What this means for $\tau$.** At the optimum a missing positive of an image with $m\ge2$
# labels scores at most about $\rho(m)$, about one half or less in 40left (printed above), and
# $1/m\le0.5$ in `single`; less where the classifier is unsure. A real classifier only
# approximates the optimum (here a sigmoid of a linear function, which cannot cap its scores at
# $\rho$), so a few scores spill over: the printed share of true positives of multi-label images
# above 0.75 is a few per cent or less under 40left and `single`, against far more with full
# labels. A threshold above the keep rate therefore catches only the tail of the score
# distribution, and memorising the training labels does not help: it pushes the missing
# positives *down*, towards their 0 targets. So:
#
# * $\tau$ must sit **below the keep rate** of the images that have missing labels to mine a
#   useful share of them; with $\tau=0.75$ a BCE classifier under 40left mines almost nothing
#   (the run of section 4 mined nothing; the converged linear classifier puts only the printed
#   small share of true positives above 0.75);
# * it must sit **above the scores of the true negatives**, which the optimum puts at
#   $\rho\,P(t=1\mid x)$ with $P(t=1\mid x)$ small;
# * a base loss that down-weights negatives (Hill, ASL, SPLC's own correction, or
#   `correct_base_targets=True`) changes the optimum itself, and with it the right $\tau$.
#
# The next section sweeps $\tau$ on the scores of the CNN itself.
#
# ## 6. Precision and recall of the mined labels as $\tau$ varies

# %%
# NBVAL_IGNORE_OUTPUT
taus = np.round(np.arange(0.05, 0.96, 0.05), 2)
curves = {}  # epoch -> array (len(taus), 3): precision, recall, number mined
for e in stops:
    rows = []
    for tau in taus:
        _, mined = my_mine(logits_at[e], Y_tr, float(tau), epoch=e + 1)
        rows.append([*precision_recall(mined, Y_tr, T_tr), int(mined.sum())])
    curves[e] = np.array(rows)
base_rate = float(((Y_tr == 0) & (T_tr == 1)).sum() / (Y_tr == 0).sum())


def masked_precision(rows):
    """Precision column of a curve, NaN where fewer than 10 labels are mined."""
    return np.where(rows[:, 2] >= 10, rows[:, 0], np.nan)


print(
    f"precision of a random guess (share of unobserved entries that are positive): {base_rate:.3f}"
)
for tau in (0.1, 0.2, 0.3, 0.5, 0.75):
    p, r, n = curves[stops[-1]][int(np.argmin(np.abs(taus - tau)))]
    print(f"last model, tau={tau:.2f}: mines {int(n):5d} labels, precision {p:.3f}, recall {r:.3f}")

# %%
fig, axes = plt.subplots(1, 3, figsize=(15, 4))
for e, c in zip(stops, plt.cm.viridis(np.linspace(0, 0.9, len(stops)))):
    axes[0].plot(taus, masked_precision(curves[e]), "o-", ms=3, color=c, label=f"end of epoch {e}")
    axes[1].plot(taus, curves[e][:, 1], "o-", ms=3, color=c, label=f"end of epoch {e}")
    axes[2].semilogy(
        taus, np.maximum(curves[e][:, 2], 0.5), "o-", ms=3, color=c, label=f"end of epoch {e}"
    )
axes[0].axhline(base_rate, color="0.5", ls=":", label="random guess")
for ax, what in zip(
    axes,
    ["precision of mined labels", "recall of missing positives", "labels mined (0 drawn at 0.5)"],
):
    ax.axvline(0.75, color="tab:red", ls="--", lw=1)
    ax.set(xlabel=r"threshold $\tau$", ylabel=what, title=f"{what} vs $\\tau$")
    ax.legend(fontsize=8)
plt.tight_layout()
plt.show()

# %% [markdown]
# Raising $\tau$ trades recall for precision: the rule mines fewer labels, and for the trained
# models those it mines are more often right, far above the random-guess rate (dotted). Where a
# precision curve stops, fewer than 10 labels are mined (too few for a precision). The dashed red
# line is the training threshold: none of the six models mines a single label there, as section 5
# predicts.

# %%
# NBVAL_IGNORE_OUTPUT
last = curves[stops[-1]]
best = np.nanmax(masked_precision(last))
print(
    f"last model: best precision (>= 10 mined) {best:.3f} (random guess {base_rate:.3f}), "
    f"recall {last[:, 1].min():.3f}..{last[:, 1].max():.3f}"
)
assert np.all(np.diff(last[:, 1]) <= 1e-12) and np.all(np.diff(last[:, 2]) <= 0)  # monotone in tau
assert best > 2 * base_rate and last[0, 1] > 0.5  # informative scores
j075 = int(np.argmin(np.abs(taus - 0.75)))
assert all(curves[e][j075, 2] == 0 for e in stops)  # no model mines anything at tau = 0.75

# %% [markdown]
# ## 7. ... and as training progresses
#
# Three views per epoch. First, the same numbers at two fixed thresholds (end-of-epoch models,
# dashed; precision only where at least 10 labels are mined). Second, the recall the correction
# really achieved during training at $\tau=0.75$ (`metrics.json`, black). Third, a
# threshold-free measure of how well the scores *rank* the unobserved entries: the ROC AUC of
# $\sigma(s_{ik})$ for telling missing positives from true negatives (0.5 = chance).

# %%
# NBVAL_IGNORE_OUTPUT
unobserved = Y_tr == 0  # (N_train, C)
auc = [roc_auc_score(T_tr[unobserved].numpy(), logits_at[e][unobserved].numpy()) for e in stops]
j02 = int(np.argmin(np.abs(taus - 0.2)))
recall_02 = [float(curves[e][j02, 1]) for e in stops]
mined_02 = [int(curves[e][j02, 2]) for e in stops]
print("AUC missing-vs-negative per epoch:", " ".join(f"{a:.3f}" for a in auc))
print("recall at tau=0.2 per epoch:      ", " ".join(f"{r:.3f}" for r in recall_02))
print("labels mined at tau=0.2 per epoch:", " ".join(f"{n}" for n in mined_02))
print(
    "precision at tau=0.2 per epoch:   ",
    " ".join(f"{curves[e][j02, 0]:.3f}" if mined_02[e] >= 10 else "n/a" for e in stops),
)
print(f"unobserved entries: {int(unobserved.sum())}; random-guess precision {base_rate:.3f}")
assert auc[-1] > 0.6 and auc[-1] > auc[0]
# what the text says: after epoch 0 most unobserved entries are mined at about the random-guess
# precision; after epoch 1 almost nothing; later the recall stays small, far below the epoch-0
# value (the precision of the later models is asserted in section 6, over all thresholds)
assert mined_02[0] > 0.5 * int(unobserved.sum()) and abs(curves[0][j02, 0] - base_rate) < 0.05
assert mined_02[1] < 10 and recall_02[0] > 0.5 and max(recall_02[1:]) < 0.2 * recall_02[0]
assert auc[0] < 0.55

# %%
fig, axes = plt.subplots(1, 3, figsize=(15, 4))
ep = [r["epoch"] for r in metrics["epochs"]]
axes[1].plot(
    ep,
    [r["mined"]["recall"] for r in metrics["epochs"]],
    "ks-",
    lw=2,
    label=r"during training, $\tau$=0.75",
)
for tau, c in zip([0.2, 0.3], ["tab:blue", "tab:orange"]):
    j = int(np.argmin(np.abs(taus - tau)))
    axes[0].plot(
        stops,
        [masked_precision(curves[e])[j] for e in stops],
        "o--",
        color=c,
        label=rf"end-of-epoch model, $\tau$={tau}",
    )
    axes[1].plot(
        stops,
        [curves[e][j, 1] for e in stops],
        "o--",
        color=c,
        label=rf"end-of-epoch model, $\tau$={tau}",
    )
axes[0].axhline(base_rate, color="0.5", ls=":", label="random guess")
axes[2].plot(stops, auc, "o-", color="tab:green", label="missing positives vs true negatives")
axes[2].axhline(0.5, color="0.5", ls=":", label="chance")
for ax, what in zip(
    axes, ["precision of mined labels", "recall of missing positives", "ROC AUC of the scores"]
):
    ax.set(xlabel="epoch", ylabel=what, title=f"{what} vs epoch")
    ax.legend(fontsize=8)
plt.tight_layout()
plt.show()

# %% [markdown]
# As the classifier learns, its scores rank the missing positives better above the true
# negatives (the AUC grows over the run, from chance level). The labels the last model mines at
# its best threshold are right more than twice as often as a random guess (section 6, asserted
# there); at $\tau=0.2$ the printed precision of the later models varies from run to run, since
# they mine only a few hundred labels or fewer. The premise of the rule, that confident
# predictions of a trained classifier are more often right than chance, holds.
#
# The recall at a fixed threshold, however, does **not** grow with training. The model after
# epoch 0 is uncalibrated and puts every score near the label frequency, so at $\tau=0.2$ it
# mines most of the unobserved entries, at about the random-guess precision. The next model mines
# almost nothing. Later models move the scores towards the BCE optimum of section 5, which keeps
# them below the keep rate, so their recall stays a small fraction of the epoch-0 value (the
# printed recall; the cell above asserts these claims).
#
# *Where* the confident region starts depends on the keep rate, the base loss and the training,
# so $\tau$ is a real hyperparameter (docs/method.md §5.6, §6 Q6), not a constant. On this run
# the reference value 0.75 leaves the CLML term with the observed labels only.

# %% [markdown]
# ## 8. Scratch rule == library
#
# Finally, the scratch rule of section 3 against `clml_lib.losses.correct_labels` and
# `mine_false_negatives`, on the same logits (the last model's), for several $\tau$ and epochs,
# in the 1/0 encoding and in a 1/0/-1 encoding where the missing positives and half of the true
# negatives are unknown (-1) and the other negatives are known (0).

# %%
S = logits_at[stops[-1]]  # (N_train, C) the last model's logits
known_neg = (T_tr == 0) & (torch.rand(T_tr.shape, generator=torch.Generator().manual_seed(1)) < 0.5)
Y_ternary = to_unknown_encoding(Y_tr, known_negatives=known_neg)  # (1800, C) 1 / 0 / -1
for name, Y in [("1/0", Y_tr), ("1/0/-1", Y_ternary)]:
    for tau in (0.1, 0.2, 0.3, 0.75):
        for epoch in (0, 1, 4):
            mine, mined = my_mine(S, Y, tau, epoch)
            lib, lib_mined = mine_false_negatives(S, Y, tau, epoch)
            assert torch.equal(mine, correct_labels(S, Y, tau, epoch)) and torch.equal(mine, lib)
            assert torch.equal(mined, lib_mined)
    print(f"{name}: scratch == correct_labels == mine_false_negatives for 4 taus x 3 epochs: True")

# %% [markdown]
# What the encoding changes: with known negatives (0 in the 1/0/-1 matrix) the rule can only
# mine unknown entries, so the same scores give fewer and more precise mined labels.

# %%
# NBVAL_IGNORE_OUTPUT
for name, Y in [("1/0", Y_tr), ("1/0/-1", Y_ternary)]:
    corrected, mined = my_mine(S, Y, 0.2, epoch=1)
    print(
        f"{name:>6}, tau=0.2: mined {int(mined.sum()):4d}, precision "
        f"{precision_recall(mined, Y, T_tr)[0]:.3f}, "
        "known negatives flipped "
        f"{int((corrected[Y == 0] == 1).sum()) if name == '1/0/-1' else 'n/a'}"
    )
assert not my_mine(S, Y_ternary, 0.2, 1)[0][Y_ternary == 0].any()  # a known 0 is never mined

# %% [markdown]
# Two edge cases the equation settles: the comparison is strict ($\sigma(0)=0.5$ is not $>0.5$),
# and nothing carries a gradient.

# %%
s = torch.zeros(2, 3, requires_grad=True)  # sigma(0) = 0.5 exactly
y = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
print(
    "mined at tau=0.5 (strict >):",
    int(mine_false_negatives(s, y, 0.5, epoch=1)[1].sum()),
    "| at tau=0.49:",
    int(mine_false_negatives(s, y, 0.49, epoch=1)[1].sum()),
)
print(
    "requires_grad:",
    correct_labels(s, y, 0.49, epoch=1).requires_grad,
    my_mine(s, y, 0.49, 1)[0].requires_grad,
)
assert (
    torch.equal(my_mine(s, y, 0.5, 1)[0], correct_labels(s, y, 0.5, 1))
    and not correct_labels(s, y, 0.49, 1).requires_grad
)

# %% [markdown]
# ## Summary
#
# * `simulate_missing(labels, '40left', seed)` keeps $\lfloor n/5\rfloor+1$ of an image's $n$
#   positives, as the released COCO files do (one per teaching image); the 1/0 labels cannot tell
#   a missing positive from a negative.
# * Under assume-negative, a sizeable share of the "negatives" of the teaching set are hidden
#   positives, and every (anchor, label) pair of a batch of 64 has false negatives among its
#   negatives.
# * Label correction: $\hat y_{ik}=1$ if observed, or if $e\ge e_0$ and $\sigma(s_{ik})>\tau$
#   (strict, detached, recomputed every step, only adds positives, feeds only the CLML term).
# * BCE on assume-negative labels is minimised by $P(y^{\text{obs}}=1\mid x)=\rho\,P(t=1\mid x)$:
#   measured, the scores of true positives of multi-label images scale with their keep rate.
#   Single-label images keep their label ($\rho(1)=1$) but have nothing to mine.
# * Hence $\tau$ must sit below the keep rate of the images with missing labels: with the reference
#   $\tau=0.75$, this 40left run mined nothing, and the converged linear classifier scored only a
#   small share of the true positives of multi-label images above 0.75. Lower thresholds trade
#   recall for precision; the mined labels are more precise than chance, but the recall at a fixed
#   $\tau$ does not grow steadily with training.
# * Our five-line rule equals `correct_labels` / `mine_false_negatives` for 1/0 and 1/0/-1 labels.
#
# ## Exercises
#
# Each exercise has a checker: replace `None` by your answer and run the cell. Written solutions
# and code: `notebooks/solutions/ch01.md` and `ch01.py`.
#
# 1. Repeat section 2 with `'75left'` and `'single'` (teaching training set, seed 0): what share of
#    the assumed negatives are missing positives? Which setting needs correction most?
#    Answer as `{"75left": share, "single": share}`.

# %%
answer_1 = None  # {"75left": ..., "single": ...}
_ = ch01.check_false_negative_rates(answer_1)

# %% [markdown]
# 2. Derive the minimiser of the expected BCE of section 5 yourself, as a function
#    `f(p_true, keep)`: the label is present with probability `p_true` and, if present, observed
#    with probability `keep`. (The checker compares it with a brute-force minimisation.)

# %%
answer_2 = None  # a function f(p_true, keep) -> the optimal score
_ = ch01.check_bce_minimiser(answer_2)

# %% [markdown]
# 3. Measure the keep rate $\rho(m)$ of the teaching training set under `'40left'` (seed 0) for
#    every number $m$ of true labels, as `{m: rate}`. Why is $\rho(1)$ what it is, and why does
#    $\rho$ fall with $m$?

# %%
answer_3 = None  # {1: ..., 2: ..., ...}
_ = ch01.check_keep_rate_by_count(answer_3)

# %% [markdown]
# 4. Under `'single'`, what is the BCE optimum of the score of a surely present label of an image
#    with $m$ true labels? Give it as a function `f(m)`. Which images could $\tau=0.75$ mine from
#    at the optimum?

# %%
answer_4 = None  # a function f(m) -> the optimal score
_ = ch01.check_single_setting_scores(answer_4)
