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
# # 05 · Ablations: $\lambda$, $\tau$ and the four columns of the paper's t-SNE figure
#
# **What you will learn**
#
# 1. The four columns of the paper's t-SNE ablation figure (BCE, + low-rank, + label correction,
#    + CLML) as `TrainConfig` switches, checked against `CLMLLoss.ablation`.
# 2. How to run a small grid with `clml_lib.train.fit`: a list of configs, one `fit` each, one
#    summary row each, several seeds.
# 3. What $\lambda$ and $\tau$ do at the teaching scale: a sweep of each, reported as the gain over
#    the baseline, mean ± std over seeds, in a table and a heatmap.
# 4. What the four columns do to the embedding (t-SNE panels like the paper's figure).
#
# **Prerequisites**: notebook 04 (the teaching recipe, the probabilities of a BCE model under
# 40left, why $\tau=0.75$ mines nothing there).
#
# **Runs in** about 1.5-2 minutes on 2 idle CPU cores: 18 short fine-tuning runs of about 4 s
# each, 4 t-SNE maps, plus the baseline of notebook 04 (about 20 s) if it has not been run yet.
# Every number that comes from training sits in a cell that nbval does not compare; loose
# `assert`s still check it.
#
# **A deliberately tiny protocol.** Training the teaching model from scratch takes 10 epochs
# (notebook 04); 18 such runs would take about 6 minutes. So every run here **starts from the same
# warm start**, the BCE model of notebook 04 (trained on the same 40left labels, never on the
# hidden ones), and **fine-tunes it for 2 epochs** (a 2-epoch OneCycle schedule, peak lr
# $3\cdot10^{-4}$) with its own loss. The paper fine-tunes too (from an ImageNet backbone).
# Because the model is trained already, correction is on from the first fine-tuning step
# ($e_0=0$). The EMA is switched off (`ema_decay=0`, so the "EMA model" is the raw one): over 58
# steps the EMA would stay close to the warm start and win the validation selection, and every
# run would report the warm start. The seeds change the order of the fine-tuning batches only:
# not the warm start, the images or the missing labels. Expect small effects, and read them
# against the spread over seeds.

# %%
from clml_lib.nb import setup_notebook

setup_notebook(seed=0)

import contextlib
import io
import json

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch
from sklearn.manifold import TSNE
from sklearn.metrics import silhouette_score

from clml_lib.data import TeachingMultiLabel, colabel_groups
from clml_lib.losses import CLMLLoss
from clml_lib.models import build_model
from clml_lib.paths import PARAMS, resolve
from clml_lib.train import fit, load_config
from clml_lib.train.checkpoint import load_checkpoint
from clml_lib.train.engine import build_criterion

# %% [markdown]
# ## 1. The warm start and the tiny config
#
# The warm start is notebook 04's baseline run, same config and same `out_dir`: `fit` with
# `resume=True` finds its finished checkpoint and returns at once (or trains it, if notebook 04
# has not been run). Its raw weights become the `weights_path` of every run below.

# %%
# NBVAL_IGNORE_OUTPUT
OUT = resolve("runs/notebooks/05")
preset = load_config(PARAMS / "teaching.yaml")
cfg_warm = preset.replace(use_clml=False, correction=False, out_dir="runs/notebooks/04/bce",
                          progress=False, resume=True)
summary_warm = fit(cfg_warm)
OUT.mkdir(parents=True, exist_ok=True)
WARM = OUT / "warm_start_bce.pt"
torch.save(load_checkpoint(resolve(cfg_warm.out_dir) / "checkpoint.pt")["model"], WARM)
assert summary_warm["finished"] and summary_warm["test_mAP"] > 40

# %%
tiny = cfg_warm.replace(weights_path=str(WARM), epochs=2, stop_epoch=-1, lr=3e-4, start_epoch=0,
                        ema_decay=0.0, resume=False)
print({k: getattr(tiny, k) for k in ("epochs", "lr", "batch_size", "start_epoch", "ema_decay", "setting")})

# %% [markdown]
# ## 2. The four columns as `TrainConfig` switches
#
# | paper column | `CLMLLoss.ablation` | `use_clml` | `correction` | `correct_base_targets` |
# |---|---|---|---|---|
# | (a) BCE | `'base'` | False | False | False |
# | (b) BCE + Low-rank | `'low_rank'` | True | False | False |
# | (c) BCE + Label Correction | `'correction'` | False | True | True |
# | (d) BCE + CLML | `'clml'` | True | True | False |
#
# Column (c) has no low-rank term, so the corrected labels can only act through the base loss:
# this implementation's reading of that column is "BCE on corrected targets" (paper.md section 6,
# Q1). In column (b) the low-rank term sees the observed labels; in (d) the corrected ones, and
# BCE keeps the observed ones. We take $\lambda=10$ and $\tau=0.3$ as the reference point (notebook
# 04 explains both). The engine builds its loss from the config with `build_criterion`; check that
# each column gives the same switches as the loss's own `CLMLLoss.ablation`:

# %%
REF = dict(lambda_=10.0, tau=0.3)
COLUMNS = {
    "base": dict(use_clml=False, correction=False, correct_base_targets=False),
    "low_rank": dict(use_clml=True, correction=False, correct_base_targets=False),
    "correction": dict(use_clml=False, correction=True, correct_base_targets=True),
    "clml": dict(use_clml=True, correction=True, correct_base_targets=False),
}
keys = ("use_low_rank", "use_correction", "correct_base_targets", "lambda_", "tau", "start_epoch")
for name, switches in COLUMNS.items():
    engine_loss = build_criterion(tiny.replace(**switches, **REF))
    paper_column = CLMLLoss.ablation(name, lambda_=REF["lambda_"], tau=REF["tau"], start_epoch=0)
    same = all(getattr(engine_loss, k) == getattr(paper_column, k) for k in keys)
    print(f"{name:10s} {same}")
    assert same

# %% [markdown]
# ## 3. The grid
#
# Nine distinct runs: the four columns, $\lambda\in\{1, 100\}$ and $\tau\in\{0.2, 0.5, 0.75\}$
# around the reference point. Two sweep points need no run of their own: $\lambda=10,\tau=0.3$ is
# the `clml` column, and $\lambda=0$ is the `base` column (with $\lambda=0$ the corrected labels
# feed nothing, so the training is exactly BCE). The $\lambda$ values are spread by factors of
# 10 because the base loss is a **sum** over the batch and the classes ($\approx 530$ at
# initialisation, $\approx 185$ per batch while fine-tuning) while the CLML term is divided by
# $N$ (a few units at $\lambda=1$). Each run is one `fit`; its engine log is silenced and one line printed
# instead.

# %%
RUNS = {name: {**REF, **switches} for name, switches in COLUMNS.items()}
RUNS |= {f"lambda={v:g}": {**RUNS["clml"], "lambda_": v} for v in (1.0, 100.0)}
RUNS |= {f"tau={v:g}": {**RUNS["clml"], "tau": v} for v in (0.2, 0.5, 0.75)}
SWEEPS = {
    "lambda (tau = 0.3)": {"0": "base", "1": "lambda=1", "10": "clml", "100": "lambda=100"},
    "tau (lambda = 10)": {"0.2": "tau=0.2", "0.3": "clml", "0.5": "tau=0.5", "0.75": "tau=0.75"},
    "columns (lambda = 10, tau = 0.3)": {"(a)\nBCE": "base", "(b)\n+ low-rank": "low_rank",
                                         "(c)\n+ correction": "correction", "(d)\n+ CLML": "clml"},
}
SEEDS = (0, 1)
print(len(RUNS), "runs x", len(SEEDS), "seeds")

# %%
# NBVAL_IGNORE_OUTPUT
rows = []
for seed in SEEDS:
    for name, overrides in RUNS.items():
        cfg = tiny.replace(seed=seed, out_dir=str(OUT / name / f"seed{seed}"), **overrides)
        with contextlib.redirect_stdout(io.StringIO()):  # the per-epoch log of fit
            s = fit(cfg)
        mined = json.loads((OUT / name / f"seed{seed}" / "metrics.json").read_text())["epochs"][-1]["mined"]
        rows.append({"run": name, "seed": seed, "test_mAP": s["test_mAP"], "best_test_mAP": s["best_test_mAP"],
                     "mined": mined["count"], "precision": mined["precision"], "recall": mined["recall"]})
        print(f"{name:11s} seed {seed}: test mAP {s['test_mAP']:.2f}  mined in last epoch {mined['count']}")
results = pd.DataFrame(rows)
assert results["test_mAP"].between(30, 100).all()

# %% [markdown]
# ## 4. Gains over the baseline, mean ± std over seeds
#
# Runs with the same seed see the same batches in the same order, so we compare each run with the
# baseline **of its own seed** (a paired difference), then average over seeds. The test mAP is
# that of the model selected on the validation split (the honest protocol of notebook 04). The
# mined-label columns are those of the last epoch (against the hidden truth).

# %%
# NBVAL_IGNORE_OUTPUT
base_by_seed = results[results["run"] == "base"].set_index("seed")["test_mAP"]
results["gain"] = results["test_mAP"] - results["seed"].map(base_by_seed)
stats = results.groupby("run", sort=False).agg(
    test_mean=("test_mAP", "mean"), test_std=("test_mAP", "std"), gain_mean=("gain", "mean"),
    gain_std=("gain", "std"), mined=("mined", "mean"), precision=("precision", "mean"),
    recall=("recall", "mean"))
print(stats.to_string(float_format=lambda x: f"{x:.2f}"))
assert np.allclose(stats.loc["base", ["gain_mean", "gain_std"]], 0)
assert stats.loc["base", "mined"] == 0 and stats.loc["low_rank", "mined"] == 0

# %%
# NBVAL_IGNORE_OUTPUT
lim = max(stats["gain_mean"].abs().max(), 0.5)
fig, axes = plt.subplots(1, 3, figsize=(15, 3), gridspec_kw={"width_ratios": (1, 1, 1.25)})
for ax, (title, cols) in zip(axes, SWEEPS.items()):
    mean = pd.DataFrame([[stats.loc[r, "gain_mean"] for r in cols.values()]], columns=list(cols))
    text = np.array([[f"{stats.loc[r, 'gain_mean']:+.2f}\n± {stats.loc[r, 'gain_std']:.2f}"
                      for r in cols.values()]])
    sns.heatmap(mean, annot=text, fmt="", cmap="RdBu", center=0, vmin=-lim, vmax=lim, ax=ax,
                cbar=ax is axes[-1], cbar_kws={"label": "test mAP gain"}, yticklabels=False)
    ax.set(title=title, xlabel="")
    ax.tick_params(axis="x", rotation=0, labelsize=8)
fig.suptitle(f"Test mAP gain over BCE (val-selected model), mean ± std over {len(SEEDS)} seeds", y=1.05)
plt.show()

# %% [markdown]
# ## 5. The four columns under t-SNE
#
# As in notebook 04: the test images carrying **ring**, coloured by their other labels (ring with
# crescent or star, ring with semicircle, plus or bar), the rest grey; features of the last
# epoch's raw model of seed 0; the silhouette of the two ring groups in the feature space
# (cosine) in each title, and for the warm start the run began from.

# %%
test = TeachingMultiLabel("test", image_size=preset.image_size)
X_test, Y_test = test.tensors()  # (1000, 3, 32, 32), (1000, 12)
names = test.classes
group = colabel_groups(Y_test, names, anchor="ring")  # (1000,) ring images by co-labels
two = np.isin(group, ["ring + crescent/star", "ring + semicircle/plus/bar"])


def features(weights):
    """Test-set features z (1000, D) of a model with the given state dict."""
    model = build_model(tiny.backbone, weights["head.weight"].shape[0])
    model.load_state_dict(weights)
    with torch.no_grad():
        return model.eval()(X_test)[1].numpy()


# %%
# NBVAL_IGNORE_OUTPUT
style = {"no ring": ("0.85", 3), "ring, other": ("0.55", 6),
         "ring + crescent/star": ("tab:blue", 10), "ring + semicircle/plus/bar": ("tab:orange", 10)}
Z_warm = features(torch.load(WARM, weights_only=True))
print(f"warm start: silhouette {silhouette_score(Z_warm[two], group[two], metric='cosine'):.3f}")
fig, axes = plt.subplots(1, 4, figsize=(16, 4.4))
for ax, (label, run) in zip(axes, SWEEPS["columns (lambda = 10, tau = 0.3)"].items()):
    Z = features(load_checkpoint(OUT / run / "seed0" / "checkpoint.pt")["model"])  # (1000, D)
    xy = TSNE(n_components=2, init="pca", random_state=0).fit_transform(Z)  # (1000, 2)
    for g, (color, size) in style.items():
        ax.scatter(*xy[group == g].T, s=size, c=color, label=g)
    sil = silhouette_score(Z[two], group[two], metric="cosine")
    ax.set(title=f"{label} (silhouette {sil:.2f})".replace("\n", " "), xticks=[], yticks=[])
    print(f"{label[4:]:13s}: silhouette {sil:.3f}")
fig.legend(*axes[0].get_legend_handles_labels(), loc="lower center", ncol=4, markerscale=1.5)
fig.tight_layout(rect=(0, 0.07, 1, 1))
plt.show()

# %% [markdown]
# ## 6. Reading the results
#
# The numbers are in the table and the heatmap above. In the stored run (2 seeds, 2 fine-tuning
# epochs each; the baseline's own test mAP varies by about 0.1-0.2 between the two seeds):
#
# * **$\lambda$.** $\lambda=1$ barely moves the model (the summed BCE dominates). $\lambda=10$
#   gives a gain of about half a point, consistent over the two seeds. $\lambda=100$ lets the
#   low-rank term dominate the base loss: the gain turns negative and less stable. The useful
#   range is narrow, and it is set by the sum-reduced base loss, not by the paper's default.
# * **$\tau$.** Lower thresholds mine more labels at lower precision, and here *more* mined labels
#   help the low-rank term: the lowest threshold ($\tau=0.2$, precision around 0.67) gives the
#   largest gain. At $\tau=0.75$ nothing is mined and the run is the `low_rank` run, to the last
#   digit; at $\tau=0.5$ almost nothing is mined, and the result is the same.
# * **The four columns.** The low-rank term on the observed labels (b) gains about 0.3; adding
#   correction (d, CLML) gains about 0.5, the order the paper's figure suggests. Correction
#   *alone*, feeding the corrected labels to BCE (c), **loses** mAP and varies most between seeds:
#   every mined label is trained as a positive, so the mined set grows from one epoch to the next
#   (it nearly doubles in the stored run) and its precision falls. The
#   same mined labels that help inside the low-rank term hurt as BCE targets.
# * **t-SNE.** All four maps separate the two kinds of ring images; the silhouettes differ by a
#   few hundredths, and the highest belongs to column (c), the worst in mAP. The paper's visual
#   claim (groups cleaner from (a) to (d)) is not reproduced at this scale.
# * **Caveats.** Two seeds give a crude standard deviation; the seeds only change the batch order
#   over a shared warm start, so the spread of independent trainings is likely larger (notebook 04
#   trains from scratch and finds no clear gain on one seed). These are gains of a fine-tuning
#   regime, at the teaching scale, not a reproduction of the paper's numbers.
#
# ## Summary
#
# * The paper's four ablation columns are four settings of `use_clml`, `correction` and
#   `correct_base_targets`; the engine's loss matches `CLMLLoss.ablation` for each.
# * A grid is a list of configs and a loop over `fit`; paired differences over seeds are the
#   honest way to read small gains.
# * Because the base loss is a sum, $\lambda$ has to be scaled with it to matter, and too large a
#   $\lambda$ hurts; $\tau$ has to be matched to the missing-label rate (0.75 mines nothing here).
# * Fine-tuning from a BCE warm start, CLML gains about half a point over BCE, consistently over
#   two seeds; correcting the BCE targets instead loses mAP.
#
# ## Exercises
#
# 1. Add a third seed (`SEEDS = (0, 1, 2)`). Do the signs of the gains hold?
# 2. Add $\lambda=30$ to the sweep. Where is the best $\lambda$ for this warm start?
# 3. Run the `correction` column with $\tau=0.6$. What happens to the number and the precision of
#    the mined labels over the two epochs, and to the mAP?
# 4. Replace BCE by Hill (`base_loss="Hill"`) for the four columns (and the warm start). Does
#    CLML help a loss that already down-weights confident negatives?
