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
# # 04 · Training with CLML on the teaching set
#
# **What you will learn**
#
# 1. How to train a multi-label classifier with and without the CLML term through
#    `clml_lib.train.fit`, on the teaching set with 40 % of the positive labels left (40left).
# 2. Why the reference threshold $\tau=0.75$ mines nothing at this scale: what a classifier trained
#    on assume-negative labels predicts for the labels it was told were negative; and why a lower
#    threshold must wait until the classifier is trained (the start epoch $e_0$).
# 3. How to read `metrics.json`: validation and test mAP of the raw and EMA models per epoch, and
#    the count, precision and recall of the labels mined by label correction.
# 4. The honest number (test mAP of the model selected on a validation split) against the
#    reference protocol (best epoch on the test set), and the gap between them.
# 5. What the embeddings look like under t-SNE, for images that share one label and differ in
#    the others (the top row of the paper's t-SNE figure).
#
# **Prerequisites**: notebooks 00-03 (label correction, the low-rank terms, `CLMLLoss`).
#
# **Runs in** about 1.5 minutes on 2 idle CPU cores: three training runs of about 20 s each (10
# epochs of a 0.1 M-parameter CNN on 1,800 images of 32 x 32 pixels), then three t-SNE maps. Every
# training number below comes from those runs, so the cells that show them are not compared by
# nbval; loose `assert`s still check them.

# %%
from clml_lib.nb import setup_notebook

setup_notebook(seed=0)

import json

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from sklearn.manifold import TSNE
from sklearn.metrics import average_precision_score, silhouette_score

from clml_lib.data import TeachingMultiLabel, colabel_groups
from clml_lib.models import build_model
from clml_lib.paths import PARAMS, resolve
from clml_lib.train import fit, load_config
from clml_lib.train.checkpoint import load_checkpoint
from clml_lib.train.datasets import build_run_data

# %% [markdown]
# ## 1. The recipe
#
# We start from the teaching preset `params/teaching.yaml` (the one the main job runs): the
# embedded teaching set (12 shape classes, 2,000 training images of which 10 % are held out for
# validation with their *full* labels, 1,000 test images), `tiny_cnn`, 40left simulated with
# `split_seed=0`, summed BCE, Adam with a OneCycle schedule and an EMA of the weights. Each image
# has 2.9 positives on average; 40left keeps 40 % of them. The first run is the baseline: BCE
# alone (`use_clml=False`, `correction=False`, the "base" column of notebook 05).

# %%
RUNS = "runs/notebooks/04"
preset = load_config(PARAMS / "teaching.yaml")
cfg_bce = preset.replace(use_clml=False, correction=False, out_dir=f"{RUNS}/bce",
                         progress=False, resume=False)
show = ["setting", "base_loss", "backbone", "image_size", "epochs", "batch_size", "lr",
        "ema_decay", "val_fraction", "reduction", "seed"]
print({k: getattr(cfg_bce, k) for k in show})

# %%
# NBVAL_IGNORE_OUTPUT
summary_bce = fit(cfg_bce)
assert summary_bce["finished"] and 0 < summary_bce["test_mAP"] <= 100

# %% [markdown]
# ## 2. What does the baseline predict for the labels it was told are negative?
#
# Label correction (notebook 01) turns an unobserved label into a positive when
# $\sigma(s_{ik})>\tau$. The reference uses $\tau=0.75$. But consider what BCE on assume-negative
# labels learns: its optimum is $\sigma(s_{ik})=P(y_{ik}=1\mid x_i)$, the probability that the
# label is **observed**, not that the object is present. Under 40left only about 40 % of the
# present objects are labelled (a bit more for images with a single object, which always keep it),
# so a well-fitted model predicts well below 0.75 even for objects it sees clearly.
#
# Below: the baseline's probabilities on its own training images (final raw weights), for the
# observed positives, the hidden positives (false negatives in its training labels) and the true
# negatives.

# %%
def final_model(out_dir):
    """The raw model of the last epoch of a run (weights from out_dir/checkpoint.pt)."""
    ck = load_checkpoint(resolve(out_dir) / "checkpoint.pt")
    model = build_model(ck["config"]["backbone"], ck["model"]["head.weight"].shape[0])
    model.load_state_dict(ck["model"])
    return model.eval()


data = build_run_data(cfg_bce.replace(augment=False))  # the run's images (unflipped), labels, truth
X_train = torch.stack([data.train[i][0] for i in range(len(data.train))])  # (1800, 3, 32, 32)
with torch.no_grad():
    p_train = torch.sigmoid(final_model(cfg_bce.out_dir)(X_train)[0])  # (1800, 12)
obs, truth = data.observed.bool(), data.truth.bool()  # (1800, 12)
groups = {"observed positive": obs, "hidden positive": truth & ~obs, "true negative": ~truth}

# %%
# NBVAL_IGNORE_OUTPUT
fig, ax = plt.subplots(figsize=(7, 3.5))
bins = np.linspace(0, 1, 41)
for name, mask in groups.items():
    ax.hist(p_train[mask].numpy(), bins=bins, density=True, histtype="step", lw=2, label=name)
for tau, ls in ((0.75, "--"), (0.3, ":")):
    ax.axvline(tau, color="k", ls=ls, label=f"tau = {tau}")
ax.set(xlabel="predicted probability sigma(s) on training images", ylabel="density", yscale="log",
       title="Baseline (BCE, 40left): probabilities by kind of training label")
ax.legend(loc="center right", fontsize=8)
plt.show()
for tau in (0.75, 0.5, 0.4, 0.3, 0.2):
    mined = ~obs & (p_train > tau)  # (1800, 12) what correction would add now
    prec = (mined & truth).sum() / max(int(mined.sum()), 1)
    print(f"tau {tau:.2f}: would mine {int(mined.sum()):4d} labels, precision {prec:.2f}, "
          f"recall {(mined & truth).sum() / (truth & ~obs).sum():.3f}")

# %% [markdown]
# At $\tau=0.75$ correction has (almost) nothing to mine, so BCE + CLML with the reference $\tau$
# reduces to the low-rank term on the observed labels. Lower thresholds mine labels with high
# precision but low recall. For this notebook we take **$\tau=0.3$**, the lowest of these that
# still mines with a precision around 0.8 on the baseline's own training images, and
# **$\lambda=10$**: the summed BCE is about $NC\ln 2\approx 530$ at initialisation ($N=64$,
# $C=12$) while the CLML term is one or two units at $\lambda=1$ (the low-rank part printed in the
# logs below is $\lambda=10$ times that), so $\lambda=1$ barely moves the training. Notebook 05
# sweeps both.
#
# The histogram is that of the *trained* baseline. Correction starts at $e_0=1$ in the reference,
# whose backbone is ImageNet-pretrained; ours starts from random weights. Let us see what that
# does: first with the reference's $e_0=1$.

# %%
# NBVAL_IGNORE_OUTPUT
clml = dict(use_clml=True, correction=True, lambda_=10.0, tau=0.3, progress=False, resume=False)
cfg_e1 = preset.replace(**clml, start_epoch=1, out_dir=f"{RUNS}/bce_clml_e1")
summary_e1 = fit(cfg_e1)
assert summary_e1["finished"] and 0 < summary_e1["test_mAP"] <= 100

# %% [markdown]
# In the log of the stored run: in epoch 1, the first epoch with correction, the classifier is
# still close to the label frequencies, and every frequent class scores above 0.3 on many images.
# Correction "mines" a couple of thousand labels with a precision near 0.15, the low-rank term
# jumps, and with $\lambda=10$ it pulls the features of these wrongly merged label sets
# together. The network does not recover: the base loss stalls and the mAP stays far below the
# baseline's. (Whether $\lambda$ or $\tau$ is to blame is exercise 3.)
#
# A threshold chosen on a trained model must only be used once the model is trained. We start
# correction at $e_0=5$, the epoch in which the baseline's validation mAP starts to rise (see its
# log above):

# %%
# NBVAL_IGNORE_OUTPUT
cfg_e5 = preset.replace(**clml, start_epoch=5, out_dir=f"{RUNS}/bce_clml_e5")
summary_e5 = fit(cfg_e5)
assert summary_e5["finished"] and 0 < summary_e5["test_mAP"] <= 100

# %% [markdown]
# ## 3. The curves, from `metrics.json`
#
# `fit` rewrites `out_dir/metrics.json` after every epoch: per epoch the training loss and its
# parts, the mined labels (count, and precision and recall against the hidden truth), and the
# mAP of the raw and the EMA model on the validation and the test split.

# %%
def load_epochs(out_dir):
    """metrics.json of a run as a DataFrame, one row per epoch."""
    doc = json.loads((resolve(out_dir) / "metrics.json").read_text())
    rows = [{"epoch": e["epoch"], "val": e["val"]["mAP"], "val_ema": e["val"]["mAP_ema"],
             "test": e["test"]["mAP"], "test_ema": e["test"]["mAP_ema"],
             "low_rank": e["train"]["low_rank"], **{f"mined_{k}": e["mined"][k] for k in
             ("count", "precision", "recall")}} for e in doc["epochs"]]
    return doc, pd.DataFrame(rows).set_index("epoch")


runs = {"BCE": load_epochs(cfg_bce.out_dir), "BCE + CLML, e0=1": load_epochs(cfg_e1.out_dir),
        "BCE + CLML, e0=5": load_epochs(cfg_e5.out_dir)}
colors = dict(zip(runs, ("tab:blue", "tab:red", "tab:green")))

# %%
# NBVAL_IGNORE_OUTPUT
fig, axes = plt.subplots(1, 3, figsize=(15, 4))
for name, (_, df) in runs.items():
    for split, ls in (("val", "-"), ("test", "--")):
        axes[0].plot(df.index, df[split], ls, color=colors[name], label=f"{name}, {split}")
        axes[0].plot(df.index, df[f"{split}_ema"], ls, color=colors[name], alpha=0.3)
axes[0].set(xlabel="epoch", ylabel="mAP", title="mAP per epoch (raw model; faint: EMA)")
axes[0].legend(fontsize=7)
for shift, name in ((-0.2, "BCE + CLML, e0=1"), (0.2, "BCE + CLML, e0=5")):
    df = runs[name][1]
    axes[1].bar(df.index + shift, df["mined_count"], width=0.4, color=colors[name], label=name)
    axes[2].plot(df.index, df["mined_precision"], "o-", color=colors[name], label=f"{name}: precision")
    axes[2].plot(df.index, df["mined_recall"], "s:", color=colors[name], label=f"{name}: recall")
axes[1].set(xlabel="epoch", ylabel="labels mined during the epoch", yscale="symlog",
            title=f"label correction (tau = {cfg_e5.tau}): count")
axes[2].set(xlabel="epoch", ylabel="fraction", ylim=(-0.02, 1.02),
            title="mined labels vs hidden truth: precision, recall")
axes[1].legend(fontsize=8)
axes[2].legend(fontsize=7)
fig.tight_layout()
plt.show()

# %% [markdown]
# Reading the curves: the EMA model (faint) trails the raw model while the learning rate is high
# and catches up as the OneCycle schedule anneals. With $e_0=1$ the single burst of wrong labels
# in epoch 1 is enough to stall the run. With $e_0=5$ the mined labels are mostly right (precision
# well above 0.8) but few (recall around a few per cent of the hidden positives): the model is
# rarely confident about labels it is trained to call negative.
#
# ## 4. The numbers: selected on validation vs best on test
#
# `summary` in `metrics.json` holds both protocols. **Selected on validation**: the (epoch,
# raw/EMA) pair with the best validation mAP, and *its* test mAP (the honest number).
# **Best on test**: the maximum test mAP over epochs and raw/EMA, which is how the reference
# script reports (it selects on the test set). Their difference is the optimism of selecting on
# test. First, the selection rule written out from the per-epoch records, checked against the
# library's summary:

# %%
for name, (doc, df) in runs.items():
    cands = [(df.loc[e, v], df.loc[e, t]) for e in df.index for v, t in (("val", "test"), ("val_ema", "test_ema"))]
    selected = max(cands, key=lambda c: c[0])[1]  # first maximum of val mAP: its test mAP
    best = max(c[1] for c in cands)
    s = doc["summary"]
    ok = np.isclose(selected, s["test_mAP"]) and np.isclose(best, s["best_test_mAP"])
    print(name, bool(ok))
    assert ok

# %%
# NBVAL_IGNORE_OUTPUT
cols = ["selected_epoch", "selected_model", "val_mAP", "test_mAP", "best_test_mAP", "optimism_gap"]
table = pd.DataFrame({name: doc["summary"] for name, (doc, _) in runs.items()}).T[cols]
for name in list(runs)[1:]:
    table.loc[f"gain: {name[6:]}"] = ["", "", *(table.loc[name, cols[2:5]] - table.loc["BCE", cols[2:5]]), ""]
print(table.to_string(float_format=lambda x: f"{x:.2f}"))
for s in (summary_bce, summary_e1, summary_e5):
    assert 0 < s["test_mAP"] <= s["best_test_mAP"] <= 100 and s["optimism_gap"] >= 0

# %% [markdown]
# **What these numbers say (one seed, one split, teaching scale).** The values are in the table;
# in the stored run:
#
# * With the reference's $e_0=1$, BCE + CLML is a **large loss** against the baseline: label
#   correction on an untrained classifier, weighted by a $\lambda$ strong enough to matter,
#   derails the training.
# * With $e_0=5$ the run trains normally and ends within a few tenths of a point of the baseline
#   on the honest (val-selected) test mAP: **no clear gain**. Its best-on-test number is higher
#   than the baseline's, because its best epoch on test is not the one validation selects: the
#   optimism gap of this run is as large as the effect being measured, and reporting the best
#   epoch on test for both runs, as the reference does, would turn a tie into a gain. One seed
#   cannot separate such differences from the seed-to-seed spread; notebook 05 measures gains
#   against that spread.
# * How large the optimism gap gets depends on how much the test curve still moves near the
#   end. The OneCycle schedule here anneals to zero; the reference stops after 26 of its 80
#   epochs, with the learning rate still at 94 % of its peak.
#
# As a cross-check of `metrics.json`, the test mAP of the last epoch's raw model, recomputed with
# scikit-learn's `average_precision_score` (no tied scores here, so it is the same definition):

# %%
test = TeachingMultiLabel("test", image_size=preset.image_size)
X_test, Y_test = test.tensors()  # (1000, 3, 32, 32), (1000, 12)
feats, agree = {}, []
for name, cfg in zip(runs, (cfg_bce, cfg_e1, cfg_e5)):
    with torch.no_grad():
        logits, feats[name] = final_model(cfg.out_dir)(X_test)  # (1000, 12), (1000, 96)
    ap = [average_precision_score(Y_test[:, k], logits[:, k]) for k in range(Y_test.shape[1])]
    agree.append(bool(np.isclose(100 * np.mean(ap), runs[name][1]["test"].iloc[-1], atol=0.01)))
print(agree)
assert all(agree)

# %% [markdown]
# ## 5. The embeddings under t-SNE
#
# The paper's t-SNE figure (top row) shows images that share one label but carry different
# other labels, and claims that CLML separates these groups more cleanly. We pick the label
# **ring**, which appears in two kinds of scenes, and colour the test images that carry it by
# their other labels: ring with crescent or star (night-like), ring with semicircle, plus or bar
# (harbour-like); images with both kinds or neither stay grey, as do images without ring. The
# features $\mathbf z_i$ are the 96-d GAP vectors of each model's last epoch. t-SNE only shows
# neighbourhoods, so we also print the silhouette score of the two groups in the original
# feature space (cosine distance; 1 = perfectly separated, 0 = overlapping).

# %%
names = test.classes
group = colabel_groups(Y_test, names, anchor="ring")  # (1000,) ring images by co-labels
print(pd.Series(group).value_counts().to_string())

# %%
# NBVAL_IGNORE_OUTPUT
style = {"no ring": ("0.85", 4), "ring, other": ("0.55", 8),
         "ring + crescent/star": ("tab:blue", 14), "ring + semicircle/plus/bar": ("tab:orange", 14)}
fig, axes = plt.subplots(1, 3, figsize=(16, 5.2))
for ax, (name, Z) in zip(axes, feats.items()):
    xy = TSNE(n_components=2, init="pca", random_state=0).fit_transform(Z.numpy())  # (1000, 2)
    for g, (color, size) in style.items():
        ax.scatter(*xy[group == g].T, s=size, c=color, label=g)
    two = np.isin(group, ["ring + crescent/star", "ring + semicircle/plus/bar"])
    sil = silhouette_score(Z.numpy()[two], group[two], metric="cosine")
    ax.set(title=f"{name} (silhouette {sil:.2f})", xticks=[], yticks=[])
    print(f"{name}: silhouette of the two ring groups = {sil:.3f}")
fig.legend(*axes[0].get_legend_handles_labels(), loc="lower center", ncol=4, markerscale=1.5)
fig.tight_layout(rect=(0, 0.07, 1, 1))
plt.show()

# %% [markdown]
# The baseline and the $e_0=5$ run separate the two kinds of ring images about equally (their
# silhouettes differ by a few hundredths in the stored run): a model that recognises crescents
# and semicircles embeds them apart whether or not it is asked to. The stalled $e_0=1$ run has
# lost that structure. The paper's claim that CLML gives visibly cleaner groups is not
# reproduced at this scale, and one seed should not be over-read either way.
#
# ## Summary
#
# * `fit(TrainConfig)` trains, evaluates both the raw and the EMA model every epoch on a clean
#   validation split and the test split, and writes `metrics.json` and a checkpoint; one call
#   per run.
# * A classifier trained on assume-negative labels predicts the probability that a label is
#   *observed*; under 40left that stays well below the reference $\tau=0.75$, which then mines
#   nothing. Correction needs a threshold matched to the missing-label rate.
# * A threshold read off a trained model is too low for an untrained one: with $e_0=1$ and a
#   $\lambda$ large enough to matter, one epoch of wrongly mined labels derailed the run. Start
#   correction once the classifier is useful ($e_0=5$ here).
# * The mined labels are then mostly right but few: the recall of label correction stays low.
# * Report the test mAP of the model selected on validation; the best epoch on test is higher by
#   the optimism gap. On the teaching set, one seed shows no clear gain from CLML.
#
# ## Exercises
#
# 1. Re-run the CLML run with the reference `tau=0.75` and `lambda_=1.0`. How many labels are
#    mined, and how far is the run from the baseline?
# 2. Change `setting` to `"75left"` for the baseline. Where do the probability histograms of
#    section 2 move, and what threshold would you pick now?
# 3. Keep $e_0=1$ but use `lambda_=1.0`, then `tau=0.4`. Does the run still stall? What does
#    that say about which of the two knobs caused the damage?
# 4. Colour the t-SNE maps by another label that appears in two kinds of scenes (for example
#    `plus` with square vs with semicircle). Do the silhouette scores tell the same story?
