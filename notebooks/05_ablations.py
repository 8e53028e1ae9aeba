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
# # 05 · Ablations: λ and τ on validation, the four columns and their embeddings, "as released"
#
# **What you will learn**
#
# 1. How to choose hyper-parameters ($\lambda$, $\tau$) on the **validation** split and only then
#    look at test, with paired seeds.
# 2. The four columns of the paper's t-SNE ablation (BCE; + low-rank; + label correction;
#    + CLML) as switches of the loss (`use_clml`, `use_correction`, `correct_base_targets`), what
#    each trains, and **the embedding figure**: the test features $\mathbf Z$ of the four columns,
#    with a number beside the picture that measures what it shows.
# 3. What the released script's "+CLML" trains: its CLML gradient ignores the loss scale of a
#    `GradScaler` (notebook 06), so under loss scaling it is divided by $S=2^{16}$. We train that
#    **"as released" arm** through the engine's run object, with the loss passed in, and compare
#    it with the baseline of the same seed.
#
# **Prerequisites**: notebook 04 (the teaching regime, the run object, paired seeds and
# `clml_lib.stats`); notebook 06 (the official gradient path) for section 4.
#
# **Runs in** about 100 seconds on 2 idle CPU cores: measured for a fresh execution (no run
# folders yet, notebook 04's four shared runs included) with `scripts/execute_notebooks.sh`,
# kernel start included, 147 s of CPU time in all (kernel and workers); about 75 s when notebook
# 04 ran first. It trains 10 fine-tuning runs two at a time in worker processes of one torch
# thread each, and the "as released" run in this kernel on one thread; run again, it reads them
# back from disk. The last cell prints the wall and CPU time of the execution you are reading.
# To keep it short the choice of $\lambda$ and $\tau$ uses 2 seeds and the columns and the
# "as released" arm one seed (seed 0); the BCE and BCE + CLML runs of seeds 0 and 1 are
# notebook 04's (same configurations, same folders: read back from disk when notebook 04 ran
# first). Every number
# that comes from training sits in a cell that nbval does not compare; `assert`s in those cells
# check the claims the text makes.

# %%
from clml_lib.nb import setup_notebook

setup_notebook(seed=0)

import copy
import json
import resource
import time
import warnings

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from clml_lib.data import TEACHING_CLASSES
from clml_lib.exercises import ch05
from clml_lib.losses import CLMLLoss, official_style_low_rank
from clml_lib.losses.clml import LossParts
from clml_lib.metrics import chance_map
from clml_lib.paths import PARAMS, resolve
from clml_lib.reproduce.many import fit_many
from clml_lib.train import build_run, load_config
from clml_lib.train.engine import arm_label, build_criterion

CLOCK = time.perf_counter()  # this execution's wall clock, printed in the last cell
torch.set_num_threads(1)  # one thread per run, as in the main job (float sums depend on it)
warnings.filterwarnings("ignore", message="weights file .* holds a head")  # notebook 04, §4

# %% [markdown]
# ## 1. The runs and how they are named
#
# Every run is the teaching preset (`params/teaching.yaml`, notebook 04) under 40left with BCE as
# the base loss and a few fields changed. A seed $s$ sets `seed` and `split_seed`; all runs of one
# seed share the hidden labels, the validation images, the head initialisation and the batch
# order, so differences between runs of one seed are paired. Each run's name below is its arm as
# the engine prints it (`arm_label`).

# %%
preset = load_config(PARAMS / "teaching.yaml").replace(verbose=False, progress=False,
                                                       resume=True, base_loss="BCE")
SWITCHES = {  # the four columns of the ablation; CLMLLoss.ablation holds the same table
    "base": dict(use_clml=False, use_correction=False, correct_base_targets=False),
    "low_rank": dict(use_clml=True, use_correction=False, correct_base_targets=False),
    "correction": dict(use_clml=False, use_correction=True, correct_base_targets=True),
    "clml": dict(use_clml=True, use_correction=True, correct_base_targets=False),
}
CONFIGS = {  # short name: (folder under runs/notebooks, fields changed from the preset)
    "BCE": ("04/bce", dict(use_clml=False)),  # notebook 04's baseline (mining counted, unused)
    "CLML": ("04/bce_clml", SWITCHES["clml"]),  # the reference: lambda 1, tau 0.75
    "CLML lambda 10": ("05/clml_l10", {**SWITCHES["clml"], "lambda_": 10.0}),
    "CLML tau 0.5": ("05/clml_t05", {**SWITCHES["clml"], "tau": 0.5}),
    "low-rank only": ("05/low_rank", SWITCHES["low_rank"]),
    "correction only": ("05/correction", SWITCHES["correction"]),
}


def config(name, seed):
    folder, fields = CONFIGS[name]
    return preset.replace(**fields, seed=seed, split_seed=seed,
                          out_dir=f"runs/notebooks/{folder}_s{seed}")


def metrics(name, seed):
    return json.loads((resolve(config(name, seed).out_dir) / "metrics.json").read_text())


for name in SWITCHES:  # the engine's loss for each column == the loss's own ablation table
    engine_loss = build_criterion(preset.replace(**SWITCHES[name]))
    column = CLMLLoss.ablation(name, lambda_=preset.lambda_, tau=preset.tau,
                               start_epoch=preset.start_epoch)
    keys = ("use_clml", "use_correction", "correct_base_targets", "lambda_", "tau")
    assert all(getattr(engine_loss, k) == getattr(column, k) for k in keys), name
for name in CONFIGS:
    print(f"{name:16s}: {arm_label(config(name, 0))}")

# %% [markdown]
# The baseline keeps `use_correction` on: without the CLML term and without corrected base
# targets, correction changes nothing in the loss, but the engine still counts what it *would*
# mine, so the baseline's scores can be read at $\tau$ too. It trains exactly column (a).
#
# Training: the four candidates of section 2 for seeds 0 and 1, the two other columns for seed 0.

# %%
# NBVAL_IGNORE_OUTPUT
SEEDS = range(2)
CANDIDATES = ["CLML", "CLML lambda 10", "CLML tau 0.5"]
runs = {(n, s): config(n, s) for s in SEEDS for n in ["BCE", *CANDIDATES]}
runs.update({(n, 0): config(n, 0) for n in ("low-rank only", "correction only")})
summary = fit_many(runs, jobs=2, threads=1)
assert all(v["finished"] for v in summary.values())

# %% [markdown]
# ## 2. λ and τ, chosen on the validation split
#
# Three candidates for the CLML arm: the reference ($\lambda=1$, $\tau=0.75$), a tenfold term
# ($\lambda=10$: notebook 04 §6 measured the low-rank term's share of the gradient at a fraction
# of a per cent at $\lambda=1$), and a lower threshold ($\tau=0.5$: notebook 04 §8 showed that a
# BCE model scores present objects near the keep rate, so at 0.75 little is mined). The choice
# uses **only** `summary.val_mAP` (the validation mAP of the model each run selects), averaged
# over the paired seeds:

# %%
# NBVAL_IGNORE_OUTPUT
val = pd.DataFrame({n: [summary[(n, s)]["val_mAP"] for s in SEEDS] for n in ["BCE", *CANDIDATES]},
                   index=pd.Index(SEEDS, name="seed"))
test = pd.DataFrame({n: [summary[(n, s)]["test_mAP"] for s in SEEDS]
                     for n in ["BCE", *CANDIDATES]}, index=pd.Index(SEEDS, name="seed"))
CHANCE = chance_map(torch.load(resolve(config("BCE", 0).out_dir) / "test_scores.pt",
                               weights_only=True)["labels"])
for n in CANDIDATES:
    print(f"{n:15s}: val mAP {val[n].mean():.2f} (per seed {val[n].round(2).tolist()}), "
          f"paired val gain over BCE {(val[n] - val['BCE']).mean():+.2f}")
chosen = max(CANDIDATES, key=lambda n: val[n].mean())
print(f"chosen on validation: {chosen}")
assert chosen in CANDIDATES

# %% [markdown]
# The validation split is small (250 images per seed) and there are 2 seeds, so this choice is
# noisy; it is whatever the printed means say, and only now do we read the test numbers, with
# the labels each candidate's correction mined (over both seeds and all epochs, with the
# precision of the mined labels over all of them):

# %%
# NBVAL_IGNORE_OUTPUT
mined = {}
for n in ["BCE", *CANDIDATES]:
    eps = [e["mined"] for s in SEEDS for e in metrics(n, s)["epochs"]]
    count = sum(m["count"] for m in eps)
    true = sum(m["true"] for m in eps)
    mined[n] = (count, true / count if count else float("nan"))
gains = test.drop(columns="BCE").sub(test["BCE"], axis=0)  # (seeds, candidates) paired gains
print(test.to_string(float_format=lambda v: f"{v:.2f}"))
print(f"(chance level {CHANCE:.2f})")
for n in CANDIDATES:
    print(f"{n:15s}: test gain per seed {gains[n].round(2).tolist()}, mean "
          f"{gains[n].mean():+.2f}; mined {mined[n][0]} labels, precision {mined[n][1]:.2f}"
          f"{'   <- chosen on validation' if n == chosen else ''}")
print(f"{'BCE':15s}: would have mined {mined['BCE'][0]} labels at tau {preset.tau}")
assert mined["CLML tau 0.5"][0] > 3 * mined["CLML"][0]
assert mined["CLML tau 0.5"][1] > 0.8

fig, ax = plt.subplots(figsize=(7, 2.6))
for row, n in enumerate(CANDIDATES):
    ax.plot(gains[n], np.full(len(gains), row), "o", color="tab:blue", alpha=0.7,
            label="per seed" if row == 0 else None)
    ax.plot([gains[n].mean()], [row], "D", color="k", label="mean" if row == 0 else None)
ax.axvline(0, color="0.5", lw=1)
ax.set(yticks=range(len(CANDIDATES)), yticklabels=CANDIDATES,
       xlabel="test mAP gain over BCE (paired)", title=f"{len(SEEDS)} seeds, read after choosing")
ax.legend(fontsize=9)
plt.show()

# %% [markdown]
# What the candidates did (printed above): the threshold $\tau=0.5$ mines many times more labels
# than 0.75, nearly all true; the tenfold $\lambda$ pulls harder on the features and mines
# fewer labels, and here it has the lowest validation mAP, so validation rejects it. With 2
# seeds no interval is worth printing (a t quantile of 12.7): the numbers here show the
# protocol, choose on validation, then read test once, not a verdict. The main job
# (`bash scripts/main.sh`, 10 paired seeds) gives the reference configuration's verdict against
# the smallest effect of interest (docs/results/).
#
# ## 3. The four columns of the ablation, and their embeddings
#
# The paper's t-SNE figure has four columns; here they are four switch settings
# (`CLMLLoss.ablation`):
#
# | column | `use_clml` | `use_correction` | `correct_base_targets` | what trains |
# |---|---|---|---|---|
# | (a) BCE | False | False | False | BCE on the observed labels |
# | (b) + low-rank | True | False | False | BCE + low-rank term, both on the observed labels |
# | (c) + label correction | False | True | True | BCE on the corrected labels |
# | (d) + CLML | True | True | False | BCE on the observed, low-rank term on the corrected |
#
# Column (c) has no low-rank term, so its corrected labels can only act through the base loss:
# this project reads the column as "BCE on corrected targets" (docs/method.md §6). All four at
# the reference $\lambda=1$, $\tau=0.75$, seed 0; (a) is the BCE run, (d) the reference CLML run.
#
# **The figure.** For each column, the test features $\mathbf Z$ (1,000 x 64) of the run's final
# EMA model (`Run.evaluate("test", "ema", features=True)` on the finished run, read back from
# disk), each row scaled to unit length (the low-rank terms compare directions), projected on
# their first two principal components. Images are coloured by which of four labels they carry,
# one from each scene (grey: none or more than one of the four).
#
# **The measure beside it.** What CLML asks of $\mathbf Z$ is that the features of the images
# of one label span few directions while all features together span many: it lowers
# $\sum_k\lVert\mathbf Z_k\rVert_*-\lVert\mathbf Z\rVert_*$. On the unit-length test features we
# measure the ratio $R=\sum_k\lVert\hat{\mathbf Z}_k\rVert_*/\lVert\hat{\mathbf Z}\rVert_*$
# (lower: more label structure in the sense of CLML) and, as a plainer view of the same thing,
# the mean cosine between two test images that share a label minus the mean cosine between two
# that share none (higher: labels more separated).

# %%
COLUMNS = {"(a) BCE": "BCE", "(b) + low-rank": "low-rank only",
           "(c) + correction": "correction only", "(d) + CLML": "CLML"}
SHOWN = ["crescent", "square", "triangle", "ring"]  # one per scene (night, city, garden, harbour)


def embedding(name):
    """Unit-length test features (N, D) and test labels (N, C) of the run's final EMA model."""
    with build_run(config(name, 0)) as r:  # finished: restored from its checkpoint, no training
        out = r.evaluate("test", "ema", features=True)
    z = out["features"].double()
    return z / z.norm(dim=1, keepdim=True).clamp(min=1e-12), out["targets"]


def label_structure(z, y):
    """(R = sum_k ||Z_k||_* / ||Z||_*, within-label minus no-shared-label mean cosine)."""
    nuc = torch.linalg.matrix_norm(z, ord="nuc")
    per = sum(torch.linalg.matrix_norm(z[y[:, k] == 1], ord="nuc") for k in range(y.shape[1]))
    cos = z @ z.T  # (N, N)
    share = (y @ y.T) > 0  # (N, N): the two images share a label
    off = ~torch.eye(len(z), dtype=torch.bool)
    return float(per / nuc), float(cos[share & off].mean() - cos[~share].mean())


emb = {col: embedding(name) for col, name in COLUMNS.items()}

# %%
# NBVAL_IGNORE_OUTPUT
fig, axes = plt.subplots(1, 4, figsize=(15, 4.2), sharex=False, sharey=False)
measures = {}
idx = [TEACHING_CLASSES.index(c) for c in SHOWN]
for ax, (col, (z, y)) in zip(axes, emb.items()):
    zc = (z - z.mean(0)).numpy()
    u, s, vt = np.linalg.svd(zc, full_matrices=False)
    xy = zc @ vt[:2].T  # (N, 2) first two principal components
    which = y[:, idx].numpy()  # (N, 4)
    one = which.sum(1) == 1  # (N,) carries exactly one of the four
    ax.scatter(*xy[~one].T, s=5, color="0.8", label="other")
    for j, c in enumerate(SHOWN):
        m = one & (which[:, j] == 1)
        ax.scatter(*xy[m].T, s=7, label=c)
    measures[col] = label_structure(z, y)
    ax.set(xlabel="PC 1", ylabel="PC 2",
           title=f"{col}\nR = {measures[col][0]:.3f}, cosine gap {measures[col][1]:.3f}")
axes[0].legend(fontsize=9, markerscale=2, loc="best")
fig.tight_layout()
plt.show()
print(pd.DataFrame(measures, index=["R (lower: more label structure)",
                                    "cosine gap (higher: labels more separated)"]
                   ).T.to_string(float_format=lambda v: f"{v:.4f}"))

# %%
# NBVAL_IGNORE_OUTPUT
R_a, gap_a = measures["(a) BCE"]
spread_R = max(abs(r / R_a - 1) for r, _ in measures.values())
spread_gap = max(abs(g - gap_a) for _, g in measures.values())
print(f"largest change from column (a): R {100 * spread_R:.2f} %, cosine gap {spread_gap:.4f}")
assert spread_R < 0.01 and spread_gap < 0.01

# %% [markdown]
# **What the figure shows, measured.** The four pictures look alike, and the measures agree: the
# ratio $R$ moves by well under 1 % between the columns and the cosine gap by less than 0.01
# (asserted above). In this seed the two columns with the low-rank term, (b) and (d), have the
# slightly lower $R$ and the slightly higher cosine gap, the direction CLML aims at; one seed
# cannot say whether that is more than the noise of training. At $\lambda=1$ the low-rank term
# carries a fraction of a per cent of the gradient (notebook 04 §6), and the features are mostly
# what BCE makes of them: the label structure in all four columns comes from the backbone and the
# base loss. The paper's figure, on ResNet-101 features of COCO, shows a clearer difference; this
# miniature does not reproduce it.
#
# ## 4. The "as released" arm: the official gradient path under a GradScaler
#
# Notebook 06 shows that the released code's CLML term is an autograd `Function` whose
# `backward` returns a precomputed gradient and ignores `grad_output`. The released script
# trains with a `GradScaler`: it backpropagates $S\cdot\mathcal L$ and divides every gradient by
# $S$ before the optimiser step. The base loss's gradient passes through autograd, so it is
# scaled by $S$ and unscaled, intact; the CLML gradient is **not** scaled but **is** unscaled:
# it arrives divided by $S$.
#
# The loss is a small module with the engine's loss interface, `forward_parts(logits, features,
# observed, epoch) -> LossParts`: the library's `CLMLLoss` with `use_clml=False` gives the summed
# BCE and the corrected labels, and `official_style_low_rank` (the official gradient path,
# `clml_lib.losses.official`) adds the CLML term. `build_run(cfg, criterion=...)` trains with it;
# everything else (data, model, schedule, evaluation, selection, files) is the engine's. The
# scaler is the real `torch.amp.GradScaler("cpu")` with its default initial scale $S=2^{16}$, on
# a float32 forward (no fp16 autocast on CPU), put into the run's training state. Its growth
# interval is 2,000 steps and float32 gradients do not overflow, so in a run's few hundred steps
# $S$ stays $2^{16}$ and no step is skipped.

# %%
class AsReleased(torch.nn.Module):
    """Summed BCE + lambda * low-rank term through the official gradient path (audit only)."""

    def __init__(self, cfg):
        super().__init__()
        self.lambda_, self.delta = cfg.lambda_, cfg.delta
        self.base = CLMLLoss(cfg.base_loss, tau=cfg.tau, start_epoch=cfg.start_epoch,
                             use_clml=False, use_correction=True, reduction=cfg.reduction)

    def forward_parts(self, logits, features, observed, epoch):
        parts = self.base.forward_parts(logits, features, observed, epoch)  # BCE, corrected
        low = official_style_low_rank(features, parts.corrected, self.lambda_, self.delta)
        return LossParts(parts.base + low, parts.base, low, parts.pairwise, parts.corrected,
                         parts.mined)


cfg_r = config("CLML", 0)

# %% [markdown]
# **How large is the CLML gradient, and what is left of it?** On a training batch of seed 0 and
# the model before training (a run built and not trained), the parameter gradient of each part,
# as a share of the norm of the whole gradient: our CLML (`low_rank_loss`, correct backward)
# against the official path under the scaler. We also check the unscaled gradient of the
# official path against BCE's gradient plus the CLML gradient divided by $S$:

# %%
def param_grad(model, x, loss_fn, scaler=None):
    """Flattened parameter gradient of loss_fn(logits, features) on the batch x; unscaled when a
    scaler is given (scaler.scale(loss).backward(), then scaler.unscale_)."""
    model.zero_grad(set_to_none=True)
    logits, feats = model(x)
    loss = loss_fn(logits, feats)
    if scaler is None:
        loss.backward()
    else:
        opt = torch.optim.SGD(model.parameters(), lr=0.0)
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
    return torch.cat([torch.zeros_like(p).flatten() if p.grad is None else p.grad.flatten()
                      for p in model.parameters()])  # the head gets no gradient from the term


with build_run(cfg_r.replace(out_dir="runs/notebooks/05/grad_check")) as probe:  # not trained
    x, y, _ = next(iter(probe.train_batches(0)))  # (64, 3, 32, 32), (64, 12)
    model = copy.deepcopy(probe.model).double().train()  # float64: a 1e-8 share stays measurable
x = x.double().contiguous(memory_format=torch.channels_last)
ours, released = build_criterion(cfg_r), AsReleased(cfg_r)
g_bce = param_grad(model, x, lambda s, z: ours.forward_parts(s, z, y, 0).base)
g_clml = param_grad(model, x, lambda s, z: ours.forward_parts(s, z, y, 0).low_rank)
g_ours = param_grad(model, x, lambda s, z: ours.forward_parts(s, z, y, 0).total,
                    torch.amp.GradScaler("cpu"))
scaler = torch.amp.GradScaler("cpu")
g_rel = param_grad(model, x, lambda s, z: released.forward_parts(s, z, y, 0).total, scaler)
S = scaler.get_scale()
share_ours = float(g_clml.norm() / g_ours.norm())
share_rel = float((g_rel - g_bce).norm() / g_rel.norm())
ok_ours = torch.allclose(g_ours, g_bce + g_clml, rtol=1e-9, atol=1e-12)
ok_rel = torch.allclose(g_rel, g_bce + g_clml / S, rtol=1e-9, atol=1e-12)
print(f"loss scale S = {S:.0f}")
print(f"ours under the scaler == BCE + CLML gradients: {ok_ours}; as released under the scaler "
      f"== BCE + CLML / S: {ok_rel}")
assert S == 2.0**16 and ok_ours and ok_rel and abs(share_ours / share_rel / S - 1) < 1e-3

# %%
# NBVAL_IGNORE_OUTPUT
print(f"CLML share of the gradient norm: ours {share_ours:.2e}, as released {share_rel:.2e} "
      f"(ratio {share_ours / share_rel:.0f}); float32 resolution "
      f"{torch.finfo(torch.float32).eps:.1e}")
assert share_rel < torch.finfo(torch.float32).eps < share_ours

# %% [markdown]
# Our CLML term carries a small but real share of the gradient at $\lambda=1$ (a fraction of a
# per cent of its norm, printed above); through the official path under the scaler that share is
# divided by $S$, below the resolution of float32 (computed here in float64 so that it can be
# measured at all), the precision the training runs in: added to BCE's gradient, most of it is
# lost in the rounding.
#
# **Training the arm through the run object**, seed 0, with the scaler in the run's state; its
# summary line names the arm:

# %%
# NBVAL_IGNORE_OUTPUT
with build_run(cfg_r.replace(out_dir="runs/notebooks/05/as_released_s0"),
               criterion=AsReleased(cfg_r),
               arm="BCE +CLML as released (official gradient path, GradScaler S = 2^16)") as rel:
    rel.state.scaler = torch.amp.GradScaler("cpu")
    released_summary = rel.fit()
three = {"BCE": summary[("BCE", 0)], "ours: CLML": summary[("CLML", 0)],
         "as released": released_summary}
print(pd.DataFrame(three).T[["val_mAP", "test_mAP", "best_test_mAP"]].to_string(
    float_format=lambda v: f"{v:.3f}"))
d_rel = released_summary["test_mAP"] - summary[("BCE", 0)]["test_mAP"]
d_ours = summary[("CLML", 0)]["test_mAP"] - summary[("BCE", 0)]["test_mAP"]
loss0 = [metrics(n, 0)["epochs"][0]["train"]["base"] for n in ("BCE",)]
rel0 = json.loads((rel.out_dir / "metrics.json").read_text())["epochs"][0]["train"]["base"]
spread = abs(summary[("BCE", 0)]["test_mAP"] - summary[("BCE", 1)]["test_mAP"])
print(f"test mAP minus BCE's, seed 0: as released {d_rel:+.3f}, ours {d_ours:+.3f}; BCE seed 0 "
      f"vs seed 1: {spread:.2f} apart")
print(f"mean summed BCE of epoch 0: BCE {loss0[0]:.4f}, as released {rel0:.4f} (relative "
      f"difference {abs(rel0 / loss0[0] - 1):.1e})")
assert abs(rel0 / loss0[0] - 1) < 1e-3 and abs(d_rel) < 2 * max(spread, 0.5)

# %% [markdown]
# **Can the released script's "+CLML" differ from its baseline?** Only by what a perturbation of
# relative size below float32's resolution does to a training run: its CLML gradient reaches the
# optimiser divided by $S=2^{16}$ (the gradient check above). Trained, the "as released" arm
# starts as the BCE baseline of the same seed (their losses of the first epoch differ in the
# fifth significant digit, printed above) and drifts apart: training amplifies a change of its
# trajectory, even one at the rounding level, and by the last epoch the two differ by an amount of
# the order of the difference between two seeds (both printed above). That difference is noise of
# training, not the CLML term at work. Under loss scaling
# the released "+CLML" trains the baseline; a gain it reports has to come from elsewhere (the
# seeds, or epochs selected on test, notebook 04 §9). One seed shows the mechanism; it is not a
# paired estimate.
#
# ## Summary
#
# * Hyper-parameters are chosen on validation (`summary.val_mAP`) over paired seeds; test is read
#   once, afterwards. Lowering $\tau$ to 0.5 mines many times more labels, nearly all true; 2
#   seeds show the protocol, the main job's 10 seeds give verdicts.
# * The four columns are switch settings of one loss; their test features look alike and their
#   measured label structure differs by well under 1 % (section 3).
# * The released code's CLML gradient, under a GradScaler, is divided by the loss scale, below
#   float32's resolution: trained through the run object with the loss passed in, its "+CLML" arm
#   is the baseline plus rounding noise, which training amplifies to seed-sized differences.
#
# ## Exercises
#
# Each exercise has a checker: replace `None` by your answer and run the cell. Written solutions
# and code: `notebooks/solutions/ch05.md` and `ch05.py`.
#
# 1. In `ch05.SWEEP` the validation and test mAP of three configurations over three seeds are
#    given. Which configuration does the protocol of section 2 choose? (Answer its name.)

# %%
answer_1 = None  # a key of ch05.SWEEP
_ = ch05.check_choose_on_validation(answer_1)

# %% [markdown]
# 2. At $\tau=0.75$, when no logit of a batch exceeds the threshold, which pairs of the four
#    columns give the same loss and the same gradients? Answer a set of pairs of column names,
#    e.g. `{("base", "clml")}`.

# %%
answer_2 = None  # a set of (column, column) pairs
_ = ch05.check_identical_columns(answer_2)

# %% [markdown]
# 3. By what factor must $\lambda$ be multiplied in the released script under a GradScaler of
#    initial scale $2^{16}$ to give the CLML gradient that $\lambda=1$ gives with a correct
#    backward (as long as the scale stays at its initial value)?

# %%
answer_3 = None  # a number
_ = ch05.check_released_factor(answer_3)

# %% [markdown]
# 4. The paired gains of the main job have a standard deviation of about 0.23 mAP over seeds.
#    What is the smallest number of paired seeds $n$ for which the half-width of the 95 % t
#    interval, $t_{0.975,n-1}\cdot0.23/\sqrt n$, is at most 0.3 mAP?

# %%
answer_4 = None  # an int
_ = ch05.check_seeds_needed(answer_4)

# %% [markdown]
# ## This execution
#
# Wall time of this notebook's execution (kernel start not included) and the CPU time of this
# kernel and of the worker processes that trained the runs (a run read back from disk costs
# about a second):

# %%
cpu = sum(resource.getrusage(who).ru_utime + resource.getrusage(who).ru_stime
          for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
print(f"wall {time.perf_counter() - CLOCK:.0f} s, CPU {cpu:.0f} s")
