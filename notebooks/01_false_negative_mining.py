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
#    "40 % left" setting of the paper's COCO experiments) and what it hides.
# 2. Why the naive choice of negatives for a contrastive loss (every unobserved label of another
#    image is a negative) turns missing positives into **false negatives**, counted per label and
#    in total, per batch of 64 and over the dataset.
# 3. The label-correction rule of CLML (paper.md 2.1): mine an unobserved label as positive when
#    the classifier is confident, $\sigma(s_{ik})>\tau$. Every detail: strict $>$, start epoch,
#    detached, recomputed at every step, only ever adds positives.
# 4. How good the mined labels are: precision and recall against the hidden truth, as the
#    threshold $\tau$ varies and as training progresses (a short teaching run with
#    `clml_lib.train.fit`).
# 5. The rule built from scratch in a few lines, asserted equal to
#    `clml_lib.losses.correct_labels` and `mine_false_negatives` for the 1/0 and the 1/0/-1
#    encodings.
#
# **Prerequisites**: multi-label classification with a sigmoid per label; binary cross-entropy.
#
# **Runs in** about 1–2 minutes on 2 CPU cores, most of it the short training run of section 4.

# %%
from clml_lib.nb import setup_notebook

setup_notebook(seed=0, threads=1)  # 1 thread: much faster than 2 on a busy shared machine

import json
import shutil

import matplotlib.pyplot as plt
import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from clml_lib.data import TeachingMultiLabel, simulate_missing, split_stats, to_unknown_encoding
from clml_lib.losses import correct_labels, mine_false_negatives
from clml_lib.models import build_model
from clml_lib.paths import resolve
from clml_lib.train import TrainConfig, fit
from clml_lib.train.datasets import build_run_data

# %% [markdown]
# ## 1. Missing labels on the teaching set
#
# The teaching set (`TeachingMultiLabel`) draws 32 × 32 images of coloured shapes, 12 classes,
# with full ground truth $\mathbf t_i\in\{0,1\}^{12}$. The paper's COCO splits were made by
# dropping positive labels at random while every image keeps at least one (paper.md 3.1).
# `simulate_missing(labels, '40left', seed)` does the same: it keeps 40 % of the positives,
# at least one per image, and never invents a label. The result $\mathbf y_i$ is what training
# sees, stored as **1/0**: 1 = observed positive, 0 = negative *or missing* (the reference's
# "assume negative" convention).

# %%
train_set = TeachingMultiLabel("train", seed=0)
T_full = train_set.labels  # (N, C) hidden truth t
Y_obs = simulate_missing(T_full, "40left", seed=0)  # (N, C) observed y, 1/0
classes = train_set.classes
stats = split_stats(T_full, Y_obs, classes)
print(f"images {stats.images}, positives {stats.positives} ({stats.positives_per_image:.2f} per image)")
print(f"observed {stats.observed_positives} ({stats.observed_per_image:.2f} per image, kept {stats.kept_fraction:.3f}); "
      f"invented {stats.invented}, images left without a label {stats.observed_empty_images}")
missing = (T_full == 1) & (Y_obs == 0)  # (N, C) the hidden positives
print(f"missing positives {int(missing.sum())}")
assert (Y_obs <= T_full).all() and (Y_obs.sum(1) >= 1).all()

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
print(f"assumed negatives {int(assumed_neg.sum())}, of which false {int(missing.sum())} "
      f"({missing.sum() / assumed_neg.sum():.3f})")
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
axes[0].set(title="dataset: share of assumed negatives that are missing positives",
            ylabel="false negatives / assumed negatives")
axes[1].bar(x, (per_label_triples / len(per_batch)).numpy(), color="tab:purple")
axes[1].set(title="per batch of 64: (anchor, label, false negative) triples",
            ylabel="triples per batch (mean)")
for ax in axes:
    ax.set_xticks(x, classes, rotation=45, ha="right")
    ax.set_xlabel("label $k$")
plt.tight_layout()
plt.show()

# %% [markdown]
# Every (anchor, label) pair of a batch has some false negatives among its negatives: with 40 %
# of the positives left, the naive negative sets of a contrastive loss are polluted everywhere.
#
# ## 3. Label correction (paper.md 2.1)
#
# CLML's remedy is to trust the classifier where it is confident. With logits $s_{ik}$ (the
# model's own predictions, recomputed at every step), the corrected labels are
#
# $$
# \hat y_{ik}=\begin{cases}1,& y_{ik}=1\\[2pt] 1,& y_{ik}=0\ \wedge\ e\ge e_0\ \wedge\ \sigma(s_{ik})>\tau\\[2pt] 0,&\text{otherwise}\end{cases}
# $$
#
# Each detail is a decision of the official code, which `clml_lib` keeps (paper.md 2.1, open
# question 6.6):
#
# * **strict $>$** against $\tau$ (default $\tau=0.75$; 0.7 / 0.8 also appear in the code);
# * **start epoch** $e_0=1$ with $e$ the 0-based epoch: no correction in the first epoch, when the
#   classifier is still random;
# * **recomputed** from the current logits at every iteration, nothing stored;
# * **detached**: $\hat{\mathbf Y}$ is a constant for the backward pass (no gradient through the
#   threshold);
# * **only adds positives**: an observed 1 is never removed;
# * $\hat{\mathbf Y}$ feeds **only the CLML term**; the base loss keeps $\mathbf y$ (option
#   `correct_base_targets=True` changes that, paper.md 6.1). The code's margin shift of observed
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
# ## 4. A short teaching run
#
# How good is $\sigma(s_{ik})>\tau$ as a detector of missing positives? That depends on the
# classifier, so we train one: the teaching setting (tiny CNN, 32 px, 40 % left, BCE + CLML with
# correction at the reference $\tau=0.75$), shortened to 6 epochs with a larger learning rate.
# Training goes through `clml_lib.train.fit` only. We stop it after every epoch (`stop_epoch`;
# each call resumes from the checkpoint of the previous one, and a resumed run follows exactly
# the same trajectory), and after each stop we load the raw model's weights from
# `checkpoint.pt` to score its predictions on the training images.

# %%
out_dir = resolve("runs/notebooks/01_false_negative_mining")
shutil.rmtree(out_dir, ignore_errors=True)  # start from scratch every time
cfg = TrainConfig(
    dataset="teaching", setting="40left", split_seed=0, base_loss="BCE", use_clml=True,
    correction=True, tau=0.75, start_epoch=1, epochs=6, batch_size=64, image_size=32, lr=3e-3,
    ema_decay=0.99, backbone="tiny_cnn", augment=False, device="cpu", seed=0,
    out_dir=str(out_dir), progress=False, resume=True,
)
data = build_run_data(cfg)  # the same training images and observed labels that fit uses
X_train = torch.stack([data.train[i][0] for i in range(len(data.train))])  # (N_train, 3, 32, 32)
Y_tr, T_tr = data.observed, data.truth  # (N_train, C) observed y and hidden truth t
print(f"training images {len(X_train)}, observed {int(Y_tr.sum())}, missing {int(((Y_tr == 0) & (T_tr == 1)).sum())}")

# %%
# NBVAL_IGNORE_OUTPUT
stops = list(range(cfg.epochs))  # 0, 1, ..., 5
logits_at = {}  # epoch -> (N_train, C) logits of the raw model at the end of that epoch
for e in stops:
    fit(cfg.replace(stop_epoch=e))
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
    print(f"epoch {rec['epoch']}: mined {m['count']:4d} labels over the epoch (precision {p}, "
          f"recall {m['recall']:.4f}) | test mAP {rec['test']['mAP']:.1f}")

# %% [markdown]
# At the reference threshold the rule mines (almost) **nothing** in this run. The histogram of
# the last model's probabilities on the training images shows why.

# %%
P_last = torch.sigmoid(logits_at[stops[-1]])  # (N_train, C)
groups = {"observed positives": Y_tr == 1, "missing positives": (Y_tr == 0) & (T_tr == 1),
          "true negatives": T_tr == 0}
fig, ax = plt.subplots(figsize=(8, 4))
bins = np.linspace(0, 1, 51)
for (name, mask), c in zip(groups.items(), ["tab:green", "tab:red", "tab:gray"]):
    ax.hist(P_last[mask].numpy(), bins=bins, density=True, histtype="step", lw=2, color=c, label=name)
ax.axvline(0.75, color="k", ls="--", label=r"reference $\tau=0.75$")
ax.set(xlabel=r"predicted probability $\sigma(s_{ik})$", ylabel="density",
       title=f"last model (end of epoch {stops[-1]}) on its training images")
ax.legend()
plt.show()

# %%
# NBVAL_IGNORE_OUTPUT
for name, mask in groups.items():
    q = torch.quantile(P_last[mask], torch.tensor([0.5, 0.9, 0.99]))
    print(f"{name:<19} median {q[0]:.3f}, 90% {q[1]:.3f}, 99% {q[2]:.3f}")

# %% [markdown]
# BCE is summed over all $C$ labels of every image, and under assume-negative about 9 in 10 of
# the targets it sees are 0, the missing positives included. The classifier learns to keep every
# probability low, even on the observed positives, so few scores ever cross 0.75. The
# **ranking** is still informative: missing positives score higher than true negatives. A
# threshold only works where the probabilities are calibrated enough to cross it; with a longer
# schedule, a stronger backbone or a base loss that down-weights negatives (Hill, ASL, SPLC),
# the scores rise. A $\tau$ sweep shows what the rule would mine at each threshold.
#
# ## 5. Precision and recall of the mined labels as $\tau$ varies

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
masked_precision = lambda rows: np.where(rows[:, 2] >= 10, rows[:, 0], np.nan)  # needs >= 10 mined
print(f"precision of a random guess (share of unobserved entries that are positive): {base_rate:.3f}")
for tau in (0.1, 0.2, 0.3, 0.5, 0.75):
    p, r, n = curves[stops[-1]][int(np.argmin(np.abs(taus - tau)))]
    print(f"last model, tau={tau:.2f}: mines {int(n):5d} labels, precision {p:.3f}, recall {r:.3f}")

# %%
fig, axes = plt.subplots(1, 3, figsize=(15, 4))
for e, c in zip(stops, plt.cm.viridis(np.linspace(0, 0.9, len(stops)))):
    axes[0].plot(taus, masked_precision(curves[e]), "o-", ms=3, color=c, label=f"end of epoch {e}")
    axes[1].plot(taus, curves[e][:, 1], "o-", ms=3, color=c, label=f"end of epoch {e}")
    axes[2].semilogy(taus, np.maximum(curves[e][:, 2], 0.5), "o-", ms=3, color=c, label=f"end of epoch {e}")
axes[0].axhline(base_rate, color="0.5", ls=":", label="random guess")
for ax, what in zip(axes, ["precision of mined labels", "recall of missing positives", "labels mined (0 drawn at 0.5)"]):
    ax.axvline(0.75, color="tab:red", ls="--", lw=1)
    ax.set(xlabel=r"threshold $\tau$", ylabel=what, title=f"{what} vs $\\tau$")
    ax.legend(fontsize=8)
plt.tight_layout()
plt.show()

# %% [markdown]
# Raising $\tau$ trades recall for precision: the rule mines fewer labels, and for the trained
# models those it mines are more often right, far above the random-guess rate (dotted) once
# $\tau$ is high enough to mine only a few hundred. The model after epoch 0 is the exception: its
# scores do not rank yet, and whatever it mines is right at chance rate. Where a precision curve
# stops, fewer than 10 labels are mined (too few for a precision; none at all above
# $\tau\approx0.4$). The dashed red line is the training
# threshold: no model reaches it.

# %%
# NBVAL_IGNORE_OUTPUT
last = curves[stops[-1]]
best = np.nanmax(masked_precision(last))
print(f"last model: best precision (>= 10 mined) {best:.3f} (random guess {base_rate:.3f}), "
      f"recall {last[:, 1].min():.3f}..{last[:, 1].max():.3f}")
assert np.all(np.diff(last[:, 1]) <= 1e-12) and np.all(np.diff(last[:, 2]) <= 0)  # monotone in tau
assert best > 2 * base_rate and last[0, 1] > 0.5  # informative scores

# %% [markdown]
# ## 6. ... and as training progresses
#
# The same numbers per epoch at two fixed thresholds (end-of-epoch models, dashed; precision
# only where at least 10 labels are mined), the recall
# the correction really achieved during training at $\tau=0.75$ (`metrics.json`, black), and a
# threshold-free measure of how well the scores *rank* the unobserved entries: the ROC AUC of
# $\sigma(s_{ik})$ for telling missing positives from true negatives (0.5 = chance).

# %%
# NBVAL_IGNORE_OUTPUT
unobserved = Y_tr == 0  # (N_train, C)
auc = [roc_auc_score(T_tr[unobserved].numpy(), logits_at[e][unobserved].numpy()) for e in stops]
print("AUC missing-vs-negative per epoch:", " ".join(f"{a:.3f}" for a in auc))
assert auc[-1] > 0.6

# %%
fig, axes = plt.subplots(1, 3, figsize=(15, 4))
ep = [r["epoch"] for r in metrics["epochs"]]
axes[1].plot(ep, [r["mined"]["recall"] for r in metrics["epochs"]], "ks-", lw=2, label=r"during training, $\tau$=0.75")
for tau, c in zip([0.2, 0.3], ["tab:blue", "tab:orange"]):
    j = int(np.argmin(np.abs(taus - tau)))
    axes[0].plot(stops, [masked_precision(curves[e])[j] for e in stops], "o--", color=c,
                 label=rf"end-of-epoch model, $\tau$={tau}")
    axes[1].plot(stops, [curves[e][j, 1] for e in stops], "o--", color=c, label=rf"end-of-epoch model, $\tau$={tau}")
axes[0].axhline(base_rate, color="0.5", ls=":", label="random guess")
axes[2].plot(stops, auc, "o-", color="tab:green", label="missing positives vs true negatives")
axes[2].axhline(0.5, color="0.5", ls=":", label="chance")
for ax, what in zip(axes, ["precision of mined labels", "recall of missing positives", "ROC AUC of the scores"]):
    ax.set(xlabel="epoch", ylabel=what, title=f"{what} vs epoch")
    ax.legend(fontsize=8)
plt.tight_layout()
plt.show()

# %% [markdown]
# As the classifier learns, its scores rank the missing positives ever better above the true
# negatives (AUC), and the precision at a fixed threshold rises well above the random-guess
# rate: confident predictions are mostly right, the premise of the rule (as in Hill/SPLC). The
# recall at a fixed threshold, however, does not simply grow: the first model is uncalibrated
# (its scores are all near the label frequency, so a low $\tau$ mines almost everything at chance
# precision), and later models keep every score low. *Where* the confident region starts depends
# on the base loss and the training length, so $\tau$ is a real hyperparameter (paper.md 5.6,
# 6.6), not a constant: on this short run the reference value 0.75 leaves the CLML term with the
# observed labels only.

# %% [markdown]
# ## 7. Scratch rule == library
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
    print(f"{name:>6}, tau=0.2: mined {int(mined.sum()):4d}, precision {precision_recall(mined, Y, T_tr)[0]:.3f}, "
          f"known negatives flipped {int((corrected[Y == 0] == 1).sum()) if name == '1/0/-1' else 'n/a'}")
assert not my_mine(S, Y_ternary, 0.2, 1)[0][Y_ternary == 0].any()  # a known 0 is never mined

# %% [markdown]
# Two edge cases the equation settles: the comparison is strict ($\sigma(0)=0.5$ is not $>0.5$),
# and nothing carries a gradient.

# %%
s = torch.zeros(2, 3, requires_grad=True)  # sigma(0) = 0.5 exactly
y = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
print("mined at tau=0.5 (strict >):", int(mine_false_negatives(s, y, 0.5, epoch=1)[1].sum()),
      "| at tau=0.49:", int(mine_false_negatives(s, y, 0.49, epoch=1)[1].sum()))
print("requires_grad:", correct_labels(s, y, 0.49, epoch=1).requires_grad, my_mine(s, y, 0.49, 1)[0].requires_grad)
assert torch.equal(my_mine(s, y, 0.5, 1)[0], correct_labels(s, y, 0.5, 1)) and not correct_labels(s, y, 0.49, 1).requires_grad

# %% [markdown]
# ## Summary
#
# * `simulate_missing(labels, '40left', seed)` keeps 40 % of the positives (at least one per image);
#   the 1/0 labels cannot tell a missing positive from a negative.
# * Under assume-negative, a sizeable share of the "negatives" of the teaching set are hidden
#   positives, and practically **every** (anchor, label) pair of a batch of 64 has false
#   negatives among its negatives.
# * Label correction: $\hat y_{ik}=1$ if observed, or if $e\ge e_0$ and $\sigma(s_{ik})>\tau$
#   (strict, detached, recomputed every step, only adds positives, feeds only the CLML term).
# * $\tau$ trades precision for recall, and as training progresses more missing positives cross
#   a fixed threshold. Where the rule fires at a high enough $\tau$, its precision is far above
#   chance. But on a short BCE run the probabilities stay low and the reference $\tau=0.75$ mines
#   almost nothing: $\tau$ has to match the base loss and the schedule.
# * Our five-line rule equals `correct_labels` / `mine_false_negatives` for 1/0 and 1/0/-1 labels.
#
# ## Exercises
#
# 1. Repeat section 2 with `'75left'` and `'single'`. How does the share of false negatives per
#    batch change? Which setting needs correction most?
# 2. Retrain section 4 with `tau=0.3`, then also with `correct_base_targets=True` (the base loss
#    then sees $\hat{\mathbf Y}$ too). Compare the `mined` precision and recall in `metrics.json`.
#    Does the recall grow faster with corrected base targets? What happens to the precision
#    (think of confirmation bias)?
# 3. With the 1/0/-1 labels of section 7, count how many known negatives exceed $\tau$. They are
#    the mistakes a 1/0 encoding would have mined. What is the precision of the 1/0 rule
#    restricted to the unknown entries?
# 4. The rule uses the raw model's current logits. Load the EMA weights instead
#    (`torch.load(out_dir / "checkpoint.pt", weights_only=False)["ema"]["module"]` into a
#    `build_model(cfg.backbone, 12)`) and redo the $\tau$ sweep: are the EMA model's mined
#    labels more precise?
