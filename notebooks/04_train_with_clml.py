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
# # 04 · Training with CLML: the teaching regime, one step written out, what correction mines
#
# **What you will learn**
#
# 1. The teaching set's hidden **scenes**, the label co-occurrence they create, and the
#    **released split recipe** that hides labels (which images keep how many positives).
# 2. **mAP**, the metric of every table: its formula, a from-scratch implementation checked
#    against `clml_lib.metrics` and scikit-learn, and its chance level.
# 3. The ingredients of the recipe: a **pretrained backbone** with a fresh head, the **OneCycle**
#    schedule, the **EMA** of the weights.
# 4. **One training step written out** (forward, label correction, summed BCE, low-rank term,
#    backward, Adam with its two parameter groups) and asserted equal to the engine's step,
#    `Run.step`, including *which* parameters get weight decay.
# 5. Training BCE and SPLC with and without CLML under 40left (`clml_lib.train.build_run` and
#    `fit`): what label correction mines at $\tau=0.75$ per epoch (count, precision, recall),
#    where it works and where it cannot, the number selected on validation against the best
#    number on test, and a paired comparison with an interval.
#
# **Prerequisites**: notebooks 01 (label correction, the keep-rate argument of its section 5),
# 02 and 03 (the low-rank terms, `CLMLLoss`).
#
# **Runs in** about 70 seconds on 2 idle CPU cores: measured for a fresh execution (no run
# folders yet) with `scripts/execute_notebooks.sh`, kernel start included, 117 s of CPU time in
# all (kernel and workers). It trains 8 fine-tuning runs of the teaching regime, two at a time,
# one torch thread each (the main job's setting, so a run here gives the main job's numbers for
# its seed), about 12 s each; run again, it reads them back from disk. The last cell prints the
# wall and CPU time of the execution you are reading. The paired comparison uses 3 seeds to keep
# the notebook short; the main job runs 10. Every number
# that comes from training sits in a cell that nbval does not compare (training numbers can
# differ in the last digits across CPUs); `assert`s in those cells check the claims the text
# makes.

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
from sklearn.metrics import average_precision_score

from clml_lib import stats
from clml_lib.data import TEACHING_CLASSES, TEACHING_SCENES
from clml_lib.data.missing import keep_counts
from clml_lib.exercises import ch04
from clml_lib.losses import correct_labels
from clml_lib.metrics import chance_map, mean_average_precision
from clml_lib.models import build_model
from clml_lib.paths import PARAMS, resolve
from clml_lib.reproduce.many import fit_many
from clml_lib.train import build_run, load_config
from clml_lib.train.optim import build_scheduler

CLOCK = time.perf_counter()  # this execution's wall clock, printed in the last cell
torch.set_num_threads(1)  # one thread per run, as in the main job (float sums depend on it)
warnings.filterwarnings("ignore", message="weights file .* holds a head")  # section 4 shows it

# %% [markdown]
# ## 1. The recipe: `params/teaching.yaml`
#
# Every run in this notebook starts from the teaching preset, the file the main job
# (`bash scripts/main.sh`) runs; `load_config` composes it over the schema defaults
# (docs/configuration.md). Its design, and the choice made on validation (the learning rate),
# are in docs/teaching_regime.md. The arms differ in the base loss (`BCE` or `SPLC`) and the
# switch `use_clml` (add the low-rank CLML term, fed by label correction at $\tau$); each run's
# summary line names its arm.

# %%
RUNS = "runs/notebooks/04"
preset = load_config(PARAMS / "teaching.yaml").replace(verbose=False, progress=False,
                                                       resume=True)
show = ["setting", "backbone", "num_train_images", "val_fraction", "epochs", "batch_size", "lr",
        "weight_decay", "ema_decay", "lambda_", "tau", "start_epoch", "delta"]
print({k: getattr(preset, k) for k in show})
ARMS = {"BCE": dict(base_loss="BCE", use_clml=False),
        "BCE +CLML": dict(base_loss="BCE", use_clml=True),
        "SPLC": dict(base_loss="SPLC", use_clml=False),
        "SPLC +CLML": dict(base_loss="SPLC", use_clml=True)}


def arm_config(arm, seed, **fields):
    """The preset with the arm's fields, seed and split seed, in its own run folder."""
    slug = arm.lower().replace(" +", "_")
    return preset.replace(**{**ARMS[arm], "seed": seed, "split_seed": seed,
                             "out_dir": f"{RUNS}/{slug}_s{seed}", **fields})


# %% [markdown]
# ## 2. The teaching set: scenes, co-occurring labels, and which labels are hidden
#
# Each generated image first draws a hidden **scene**; the scene switches on a few classes with
# high probability, every other class appears with a small background probability (0.06):

# %%
for scene, (weight, table) in TEACHING_SCENES.items():
    print(f"{scene:8s} (p = {weight}): " + ", ".join(f"{c} {p}" for c, p in table.items()))

# %% [markdown]
# So labels co-occur as COCO's do ("crescent usually comes with star"). `build_run` builds a
# run's data, model, training state and loss without training anything; we build the BCE + CLML
# run of seed 0 (in a folder of its own, used again in section 6) and look at its training labels.
# Entry $(j, k)$ of the picture is $P(\text{label } j \mid \text{label } k)$ over the full,
# hidden truth of its 2,250 training images:

# %%
run = build_run(arm_config("BCE +CLML", 0, out_dir=f"{RUNS}/step_check"))
print(run)
truth, observed = run.data.truth, run.data.observed  # (2250, 12) each, 0/1
co = (truth.T @ truth) / truth.sum(0)  # (12, 12): [j, k] = P(j | k)
fig, ax = plt.subplots(figsize=(6.2, 5.2))
im = ax.imshow(co.numpy(), cmap="viridis", vmin=0, vmax=1)
ax.set_xticks(range(12), TEACHING_CLASSES, rotation=60, fontsize=9)
ax.set_yticks(range(12), TEACHING_CLASSES, fontsize=9)
ax.set(xlabel="given label k", ylabel="label j", title="P(label j | label k), training truth")
fig.colorbar(im, ax=ax, shrink=0.8, label="conditional probability")
plt.show()
assert abs(co[TEACHING_CLASSES.index("star"), TEACHING_CLASSES.index("crescent")] - 0.7) < 0.2

# %% [markdown]
# **The released split recipe.** The label files released with the paper's code keep, in every
# image with $n$ positives, $k(n)$ of them chosen uniformly within the image: 40left keeps
# $\lfloor n/5\rfloor+1$, 75left $\lfloor n/2\rfloor+1$, single 1 (`simulate_missing`'s default
# recipe, `clml_lib.data.missing.keep_counts`; docs/evaluation.md). An image with one object
# always keeps it; the missing labels sit in the multi-object images. Teaching images hold 1 to 4
# objects, and for $n\le4$ the 40left rule keeps exactly one label, as single does: here both
# settings keep one positive per image (different draws), so an object in an image of $n$
# objects is observed with probability $1/n$. The run's observed labels follow the rule exactly:

# %%
n_true = truth.sum(1).long()  # (2250,) positives per training image
kept = observed.sum(1).long()  # (2250,) observed positives per image
rule = pd.DataFrame({s: keep_counts(np.arange(1, 11), s) for s in ("75left", "40left", "single")},
                    index=pd.Index(range(1, 11), name="n positives"))
print(rule.T.to_string())
assert torch.equal(kept, torch.as_tensor(keep_counts(n_true.numpy(), preset.setting)))
per_n = pd.DataFrame({"images": n_true.bincount()[1:].tolist(),
                      "observed share of the positives": [round(1 / n, 3) for n in range(1, 5)]},
                     index=pd.Index(range(1, 5), name="n objects"))
rho = float(observed.sum() / truth.sum())
print(per_n.to_string())
print(f"{preset.setting}: {int(observed.sum())} of {int(truth.sum())} positives observed "
      f"(keep rate {rho:.3f}); {int(truth.sum() - observed.sum())} hidden")

# %% [markdown]
# ## 3. mAP, the metric
#
# For one class $k$, rank the $N$ test images by their score $s_{ik}$ (highest first). The
# **average precision** is the mean, over the $P_k$ images that carry $k$, of the precision at
# that image's rank:
#
# $$
# \mathrm{AP}_k=\frac1{P_k}\sum_{i:\,y_{ik}=1}\frac{\#\{j:\,y_{jk}=1,\ \text{rank}(j)\le
# \text{rank}(i)\}}{\text{rank}(i)},\qquad \mathrm{mAP}=\frac{100}{C}\sum_k\mathrm{AP}_k .
# $$
#
# It depends on the ranking only (logits or probabilities give the same AP), and it is 100 when
# every positive is ranked above every negative. From scratch, checked against the library's
# `mean_average_precision` and scikit-learn's `average_precision_score` on random scores for the
# 1,000 test images (random float64 scores have no ties, where the three definitions agree):

# %%
def average_precision(scores, labels):
    """AP of one class from the definition. scores, labels: (N,) arrays; labels in {0, 1}."""
    order = np.argsort(-scores, kind="stable")  # (N,) best first
    hits = labels[order]  # (N,) 1 where the ranked image carries the class
    precision_at = np.cumsum(hits) / np.arange(1, len(hits) + 1)  # (N,) precision at each rank
    return float(precision_at[hits == 1].mean())


def my_map(scores, labels):
    """mAP in % over the columns (classes) of (N, C) arrays."""
    return 100 * np.mean([average_precision(scores[:, k], labels[:, k])
                          for k in range(labels.shape[1])])


Y_test = run.data.tensors["test"][1].numpy()  # (1000, 12) test labels
S_rand = np.random.default_rng(0).standard_normal(Y_test.shape)  # (1000, 12) random scores
ours = my_map(S_rand, Y_test)
lib = mean_average_precision(S_rand, Y_test)[0]
skl = 100 * np.mean([average_precision_score(Y_test[:, k], S_rand[:, k]) for k in range(12)])
CHANCE = chance_map(Y_test)
print(f"mAP of random scores: ours {ours:.6f}, library {lib:.6f}, scikit-learn {skl:.6f}; "
      f"expected mAP of a random ranking (chance_map) {CHANCE:.2f}")
assert np.isclose(ours, lib, atol=1e-9) and np.isclose(ours, skl, atol=1e-9)

# %% [markdown]
# A random ranking scores about the share of positives, not 0: every mAP below is read against
# that chance level (printed above). (With tied scores the library gives every positive of a tied
# block the precision at the block's end, `ties='group'`; the engine scores logits, which have no
# ties in practice. Section 9 checks our function on a trained model's test scores.)
#
# ## 4. The pretrained backbone and its fresh head
#
# The paper fine-tunes an ImageNet-pretrained ResNet-101. Our analog is `small_resnet` (three
# residual stages, BatchNorm, post-ReLU global-average-pooled features $\mathbf z_i$ of
# dimension 64) pretrained on a **source task**: single-object images of 36 fine classes (12
# shapes x 3 fill textures), generated from their own random streams, never the teaching images.
# Its sidecar records how it was made:

# %%
side = json.loads(resolve("data/teaching_backbone.json").read_text())
print(side["command"], "| source task:", side["source_task"]["description"])
print(f"source test mAP {side['source_test']['map']}, top-1 {side['source_test']['top1']} %, "
      f"{side['parameters']} parameters, feature dimension {side['feature_dim']}")
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    model = build_model(preset.backbone, 12, str(preset.path("weights_path")))
print("build_model says:", *{str(w.message) for w in caught})
stored = torch.load(preset.path("weights_path"), weights_only=True)
body = [k for k in model.state_dict() if not k.startswith("head.")]
assert all(torch.equal(model.state_dict()[k], stored[k]) for k in body)
print(f"{len(body)} body tensors loaded unchanged; head {tuple(model.head.weight.shape)} "
      f"new (the file's head is {tuple(stored['head.weight'].shape)})")

# %% [markdown]
# The body is loaded strictly; the 36-way head is dropped and a fresh 12-way head is drawn, as a
# torchvision ImageNet state dict loses its 1000-way classifier. Then the **whole** network is
# fine-tuned.
#
# ## 5. OneCycle and the EMA
#
# **OneCycle** (`build_scheduler`): the learning rate starts at $\text{lr}/25$, rises along a
# cosine to the peak lr over the first 20 % of the steps, then anneals along a cosine to
# $\text{lr}/(25\cdot10^4)$. It is stepped once per batch: `run.n_steps` batches an epoch.
#
# **EMA** (`ModelEMA`): a second copy of the weights updated after every step,
# $\bar\theta\leftarrow d\,\bar\theta+(1-d)\,\theta$ with $d=0.9$: an average over roughly the
# last $1/(1-d)=10$ steps, which smooths the noise of the last steps. After $T$ steps the
# starting weights keep the weight $d^T$ in it. The engine scores both the raw and the EMA model
# every epoch and lets the validation split choose.

# %%
T = run.n_steps * preset.epochs
probe = torch.nn.Linear(1, 1)
opt = torch.optim.Adam(probe.parameters(), lr=preset.lr)
sched = build_scheduler(opt, preset.lr, preset.epochs, run.n_steps)
lrs = []
for _ in range(T):
    lrs.append(opt.param_groups[0]["lr"])
    opt.step()
    sched.step()
fig, axes = plt.subplots(1, 2, figsize=(11, 3.2))
axes[0].plot(lrs, ".-", ms=3)
axes[0].set(xlabel="step", ylabel="learning rate", title=f"OneCycle over {T} steps")
w = (1 - preset.ema_decay) * preset.ema_decay ** np.arange(T)[::-1]  # weight of step t's model
axes[1].bar(np.arange(T), w)
axes[1].set(xlabel="step", ylabel="weight in the final EMA",
            title=f"EMA d = {preset.ema_decay}: the start keeps {preset.ema_decay ** T:.1e}")
fig.tight_layout()
plt.show()
print(f"{run.n_steps} steps an epoch x {preset.epochs} epochs = {T} steps; first lr "
      f"{lrs[0]:.2e}, largest {max(lrs):.5e} at step {int(np.argmax(lrs))}, last {lrs[-1]:.2e}")
assert np.isclose(lrs[0], preset.lr / 25) and np.isclose(max(lrs), preset.lr, rtol=1e-2)

# %% [markdown]
# ## 6. One training step, written out
#
# `Run.step(batch)` is the step `fit` takes for every batch: forward, loss, backward, Adam step,
# schedule step, EMA update. We take the run's first batch of epoch 0 (`run.train_batches(0)`:
# the epoch's shuffled order and flips) and do the step two ways: `run.step` (the engine), and
# from scratch on a copy of the model. (The engine keeps the model and its batches in the
# `channels_last` memory layout on one CPU process, for faster convolutions; the copy inherits
# it, and only the order of float summations depends on it.)
#
# 1. forward: logits $\mathbf S$ (64 x 12) and features $\mathbf Z$ (64 x 64);
# 2. label correction $\hat{\mathbf Y}$ = `correct_labels(S, y, tau, epoch, start_epoch)`: at
#    epoch 0 < $e_0=1$ it returns the observed labels;
# 3. the summed BCE $\sum_{i,k}-y_{ik}\log p_{ik}-(1-y_{ik})\log(1-p_{ik})$ with
#    $p=\sigma(s)$ clamped at $10^{-8}$ (docs/method.md §2.4);
# 4. the low-rank term
#    $\frac{\lambda}{N}\big(\sum_k\max(\Delta,\lVert\mathbf Z_k\rVert_*)-\lVert\mathbf
#    Z\rVert_*\big)$ (docs/method.md §2.3), a label absent from the batch contributing $\Delta$;
# 5. backward, then Adam's first step by hand, with **coupled** weight decay (an L2 term added to
#    the gradient, $g'=g+\text{wd}\,\theta$, as `torch.optim.Adam`'s `weight_decay`; not AdamW's
#    decoupled decay) on the weights (tensors with more than one dimension) and **none** on
#    biases and BatchNorm scales and shifts. OneCycle cycles Adam's $\beta_1$ too (0.95 at the
#    start, 0.85 at the peak learning rate, `cycle_momentum`). Adam's first moment after one
#    step is $m=(1-\beta_1)g'$ and its update is
#    $\theta\leftarrow\theta-\text{lr}_0\,\hat m/(\sqrt{\hat v}+\epsilon)$ with $\hat m=g'$,
#    $\hat v=g'^2$: about $\text{lr}_0=\text{lr}/25$ in the
#    direction of $-\text{sign}(g')$.

# %%
x, y, _ = next(iter(run.train_batches(0)))  # (64, 3, 32, 32) images, (64, 12) observed labels
mine = copy.deepcopy(run.model)  # our copy, before the step
theta0 = {n: q.detach().clone() for n, q in run.model.named_parameters()}
ema_before = copy.deepcopy(run.state.ema.module.state_dict())
lr0, (beta1, beta2) = run.state.lr, run.state.optimizer.param_groups[0]["betas"]
engine = run.step((x, y), epoch=0)  # the engine's step
g_engine = {n: q.grad.clone() for n, q in run.model.named_parameters()}  # what Adam got


def nuclear(A, eps=1e-6):
    """||A||_* = sum of the singular values; autograd gives U_r V_r^T (singular values > eps)."""
    s = torch.linalg.svd(A, full_matrices=False).S  # (min(n, D),)
    return s[s > eps].sum() + s[s <= eps].detach().sum()


def written_out_loss(model):
    """(summed BCE, low-rank term) of the first batch, from the formulas above."""
    S, Z = model(x.contiguous(memory_format=torch.channels_last))  # (64, 12), (64, 64)
    Y_hat = correct_labels(S, y, preset.tau, 0, preset.start_epoch)  # (64, 12)
    p = torch.sigmoid(S)
    bce = -(y * p.clamp(min=1e-8).log() + (1 - y) * (1 - p).clamp(min=1e-8).log()).sum()
    local = [torch.clamp(nuclear(Z[Y_hat[:, k] == 1]), min=preset.delta) if Y_hat[:, k].any()
             else torch.tensor(preset.delta) for k in range(Y_hat.shape[1])]
    return bce, preset.lambda_ * (torch.stack(local).sum() - nuclear(Z)) / Z.shape[0]


def grads_of(loss):
    mine.zero_grad(set_to_none=True)
    loss.backward()
    return {n: torch.zeros_like(q) if q.grad is None else q.grad.clone()  # the head gets no
            for n, q in mine.named_parameters()}  # gradient from the low-rank term


g_bce = grads_of(written_out_loss(mine)[0])
g_low = grads_of(written_out_loss(mine)[1])
bce, low_rank = (v.detach() for v in written_out_loss(mine))
g_ours = {n: g_bce[n] + g_low[n] for n in g_bce}
decayed = {n: q.ndim > 1 for n, q in mine.named_parameters()}  # the rule: weights only
eps, wd = 1e-8, preset.weight_decay
theta1 = {}
for n, g in g_engine.items():  # Adam's first step by hand, on the engine's gradient
    g1 = g + wd * theta0[n] if decayed[n] else g
    theta1[n] = theta0[n] - lr0 * g1 / (g1.abs() + eps)  # m_hat = g', sqrt(v_hat) = |g'|

# %% [markdown]
# Now the comparisons. **Loss and gradients**: our loss parts and our gradients against the
# engine's. **Adam's update**: our parameters after the step against the engine's. **The
# parameter groups**: the optimiser's two groups against our rule; and, as a measurement, Adam's
# first moment $m=(1-\beta_1)g'$, which records the gradient Adam used. A check of the updated
# parameters alone cannot tell the groups apart: with $\hat m/\sqrt{\hat v}=\text{sign}(g')$
# the first step hardly depends on the small decay term. So we measure the decay Adam saw in
# units of $\text{wd}\,\theta$, $r=(m-(1-\beta_1)g)/((1-\beta_1)\,\text{wd}\,\theta)$, on every
# element with $|\theta|>0.1$: $r=1$ where the parameter was decayed, $r=0$ where it was not
# (the median over a tensor group; float32 rounding scatters single elements). "Decay on every
# parameter" would give $r=1$ in both groups.

# %%
# NBVAL_IGNORE_OUTPUT
rel = max(float((g_ours[n] - g_engine[n]).norm() / g_engine[n].norm().clamp(min=1e-12))
          for n in g_engine)
after = dict(run.model.named_parameters())
pdiff = max(float((theta1[n] - after[n].detach()).abs().max()) for n in theta1)
moments = run.state.optimizer.state


def decay_seen(names):
    """Median of r over the elements with |theta| > 0.1 of the tensors ``names``."""
    r = [((moments[after[n]]["exp_avg"].double() - (1 - beta1) * g_engine[n].double())
          / ((1 - beta1) * wd * theta0[n].double()))[theta0[n].abs() > 0.1] for n in names]
    return float(torch.cat(r).median())


r_weights = decay_seen([n for n in g_engine if decayed[n]])
r_others = decay_seen([n for n in g_engine if not decayed[n]])
groups = [(g["weight_decay"], {id(q) for q in g["params"]})
          for g in run.state.optimizer.param_groups]
print(f"loss parts  engine: BCE {engine.base.item():.3f}, low-rank {engine.low_rank.item():.4f}; "
      f"ours: BCE {bce.item():.3f}, low-rank {low_rank.item():.4f}")
print(f"largest relative gradient difference (per tensor) {rel:.1e}; largest parameter "
      f"difference after Adam's step {pdiff:.1e} (the step itself is about {lr0:.1e})")
print(f"decay seen by Adam, r: weights {r_weights:.2f}, biases and BatchNorm {r_others:.2f}")
print("optimiser groups (weight decay, number of tensors):",
      [(wd_g, len(ids)) for wd_g, ids in groups])
assert torch.allclose(bce, engine.base.detach(), rtol=1e-5)
assert torch.allclose(low_rank, engine.low_rank.detach(), rtol=1e-4)
assert rel < 1e-3 and pdiff < 1e-6
assert abs(r_weights - 1) < 0.1 and abs(r_others) < 0.1  # decay on every parameter fails this
assert groups == [(0.0, {id(q) for n, q in after.items() if not decayed[n]}),
                  (wd, {id(q) for n, q in after.items() if decayed[n]})]
d, now = preset.ema_decay, run.model.state_dict()
ema_ok = all(torch.allclose(run.state.ema.module.state_dict()[k], d * v + (1 - d) * now[k],
                            atol=1e-7) for k, v in ema_before.items() if v.is_floating_point())
print("EMA after the step = 0.9 * EMA before + 0.1 * new weights:", ema_ok)
assert ema_ok

# %% [markdown]
# Same loss parts, same gradients (up to float32 rounding of two SVD routes: the library's goes
# through the Gram matrix, docs/method.md §2.5 and notebook 03), same parameters after Adam's
# step, the same two parameter groups (decay on the weights only), same EMA. The engine is this
# step, `run.n_steps` times an epoch, with an evaluation after every epoch.
#
# **How hard does CLML push?** Not the loss values tell (the summed BCE is hundreds, the
# low-rank term a few units, and the two have different scales anyway), but the gradients do:
# the share of the low-rank term in the norm of the whole gradient of this batch:

# %%
# NBVAL_IGNORE_OUTPUT
flat = {k: torch.cat([g[n].flatten() for n in g]) for k, g in (("bce", g_bce), ("low", g_low))}
share = float(flat["low"].norm() / (flat["bce"] + flat["low"]).norm())
print(f"low-rank share of the gradient norm on the first batch: {100 * share:.2f} %")
assert 1e-4 < share < 0.05
run.close()  # the folder lock; nothing was written there

# %% [markdown]
# A fraction of a per cent of the gradient at $\lambda=1$ on this batch: CLML is a small
# correction to BCE's gradient here. Notebook 05 trains a tenfold $\lambda$ and measures what that
# does.
#
# ## 7. Training: BCE and SPLC, with and without CLML
#
# A **seed** sets both `seed` (head initialisation, batch order, flips) and `split_seed` (which
# positive labels are hidden, which training images form the validation split). The arms of one
# seed share all of that, so their difference is a **paired** observation. BCE and BCE + CLML run
# for 3 seeds, SPLC and SPLC + CLML for seed 0: 8 runs, two at a time in worker processes of one
# torch thread each (`clml_lib.reproduce.many.fit_many`, the main job's process runner). Each run
# prints one summary line: its arm, whether it was trained or read from disk (a finished run
# folder is read back, `resume=True`), and its selected and best-on-test numbers.

# %%
# NBVAL_IGNORE_OUTPUT
SEEDS = range(3)
configs = {(arm, s): arm_config(arm, s) for s in SEEDS for arm in ("BCE", "BCE +CLML")}
configs.update({(arm, 0): arm_config(arm, 0) for arm in ("SPLC", "SPLC +CLML")})
summaries = fit_many(configs, jobs=2, threads=1)
assert all(v["finished"] for v in summaries.values())

# %% [markdown]
# `fit` writes `metrics.json` after every epoch: the loss parts, the labels mined by correction
# (count, and precision and recall against the hidden truth), for SPLC also those its own
# correction used (`base_mined`), and the validation and test mAP of the raw and EMA models. The
# curves of seed 0:

# %%
def epochs_of(cfg):
    """metrics.json of a run: (the whole document, one DataFrame row per epoch)."""
    doc = json.loads((resolve(cfg.out_dir) / "metrics.json").read_text())
    rows = [{"epoch": e["epoch"], "val": e["val"]["mAP"], "val_ema": e["val"]["mAP_ema"],
             "test": e["test"]["mAP"], "test_ema": e["test"]["mAP_ema"],
             "base": e["train"]["base"], "low_rank": e["train"]["low_rank"],
             **{f"{k}_{q}": e[k][q] for k in ("mined", "base_mined") if k in e
                for q in ("count", "precision", "recall")}}
            for e in doc["epochs"]]
    return doc, pd.DataFrame(rows).set_index("epoch")


docs = {key: epochs_of(cfg) for key, cfg in configs.items()}

# %%
# NBVAL_IGNORE_OUTPUT
fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
for arm, color in zip(("BCE", "BCE +CLML"), ("tab:blue", "tab:red")):
    df = docs[(arm, 0)][1]
    axes[0].plot(df.index, df["val"], "-o", color=color, label=f"{arm}, val")
    axes[0].plot(df.index, df["test"], "--s", color=color, label=f"{arm}, test")
axes[0].axhline(CHANCE, color="0.5", lw=1)
axes[0].set(xlabel="epoch", ylabel="mAP (raw model)", title="seed 0: mAP (grey: chance)")
df = docs[("BCE +CLML", 0)][1]
axes[1].plot(df.index, df["base"], "o-", label="summed BCE")
axes[1].plot(df.index, 10 * df["low_rank"], "s-", label="10 x low-rank term")
axes[1].set(xlabel="epoch", ylabel="mean loss per batch", title="seed 0, BCE +CLML: loss parts")
for key, col, label in ((("BCE +CLML", 0), "mined_count", "CLML correction, BCE"),
                        (("SPLC +CLML", 0), "mined_count", "CLML correction, SPLC"),
                        (("SPLC +CLML", 0), "base_mined_count", "SPLC's own correction")):
    d = docs[key][1]
    axes[2].plot(d.index, d[col], "o-", label=label)
axes[2].set(xlabel="epoch", ylabel="labels mined in the epoch", title="seed 0: mining")
for ax in axes:
    ax.set_xticks(range(preset.epochs))
    ax.legend(fontsize=9)
fig.tight_layout()
plt.show()

# %% [markdown]
# Our from-scratch mAP agrees with the engine on a trained model too: the test scores of the
# selected model are stored in `test_scores.pt`.

# %%
# NBVAL_IGNORE_OUTPUT
ts = torch.load(resolve(configs[("BCE", 0)].out_dir) / "test_scores.pt", weights_only=True)
sel = docs[("BCE", 0)][0]["summary"]
mine_map = my_map(ts["scores"].double().numpy(), ts["labels"].numpy())
print(f"seed 0 BCE, selected model ({ts['selected']}, epoch {ts['epoch']}): our mAP "
      f"{mine_map:.4f}, metrics.json {sel['test_mAP']:.4f} (chance {CHANCE:.2f})")
assert np.isclose(mine_map, sel["test_mAP"], atol=1e-6)

# %% [markdown]
# ## 8. What label correction mined at $\tau=0.75$
#
# Per epoch of seed 0: how many labels correction added (summed over the epoch's steps, so a
# label mined again at a later step counts again), their precision (the share that are true
# positives) and their recall (the share of the hidden positives seen in the epoch that were
# mined). Correction starts at epoch $e_0=1$. For SPLC, also the labels its own correction
# (threshold 0.7, from epoch 1) treated as positives:

# %%
# NBVAL_IGNORE_OUTPUT
cols = {("BCE +CLML", 0): ["mined_count", "mined_precision", "mined_recall"],
        ("SPLC +CLML", 0): ["mined_count", "mined_precision", "mined_recall",
                            "base_mined_count", "base_mined_precision", "base_mined_recall"]}
mining = pd.concat({k[0]: docs[k][1][c] for k, c in cols.items()}, axis=1)
print(mining.to_string(float_format=lambda v: f"{v:.3f}"))
bce_m, splc_m = docs[("BCE +CLML", 0)][1], docs[("SPLC +CLML", 0)][1]
all_bce = pd.concat([docs[("BCE +CLML", s)][1] for s in SEEDS])
print(f"BCE +CLML, seeds {list(SEEDS)}: {int(all_bce['mined_count'].sum())} labels mined in "
      f"all epochs, largest recall in an epoch {all_bce['mined_recall'].max():.4f}")
assert all_bce["mined_recall"].max() < 0.01  # BCE: correction recovers < 1 % of the hidden
assert splc_m["mined_count"].sum() > 3 * max(bce_m["mined_count"].sum(), 1)
assert splc_m["base_mined_count"].sum() > splc_m["mined_count"].sum()
precise = splc_m[splc_m["mined_count"] > 0]["mined_precision"]
assert (precise > 0.85).all()  # what is mined is nearly always a true label

# %% [markdown]
# **Where correction works and where it cannot.** With BCE the CLML correction at
# $\tau=0.75$ mines a handful of labels per epoch, nearly all true, but recovers well under 1 % of
# the hidden positives. After SPLC, whose own correction already treats high-scoring negatives as
# positives, the same CLML correction mines several times more, still nearly all true, and
# SPLC's own correction (at 0.7) more again (the table above).
#
# Notebook 01, section 5, derived why BCE cannot do more: BCE on assume-negative labels is
# minimised by $p^\ast(x)=P(\text{observed}\mid x)$, the probability that a label is
# *observed*, not that it is present. A model that cannot tell which of an image's objects will be
# the observed one scores a present object at about the keep rate, $\rho\approx0.34$ here
# (section 2), far below $\tau=0.75$; only a model that could count the objects could go up to
# $1/n$, and even that is $\le0.5$ for every image that can hide a label ($n\ge2$). The final
# raw BCE model of seed 0 on the test images (never trained on): the mean score of the true
# positives by the number of objects in the image, beside the rate $1/n$ at which such an object
# is observed in training:

# %%
# NBVAL_IGNORE_OUTPUT
with build_run(configs[("BCE", 0)]) as bce_run:  # the finished run, read back from disk
    test = bce_run.evaluate("test", "raw")
p_test = torch.sigmoid(test["logits"])  # (1000, 12)
n_test = test["targets"].sum(1)  # (1000,) objects per test image
pos = test["targets"] == 1  # (1000, 12)
calib = pd.DataFrame([{"n objects": n, "observed in training (1 / n)": 1 / n,
                       "mean score of the true positives": float(p_test[m].mean()),
                       "share above tau": float((p_test[m] > preset.tau).float().mean())}
                      for n in range(1, 5) for m in [pos & (n_test == n)[:, None]]]
                     ).set_index("n objects")
print(calib.to_string(float_format=lambda v: f"{v:.3f}"))
print(f"all true positives: mean score {p_test[pos].mean():.3f}, share above tau "
      f"{(p_test[pos] > preset.tau).float().mean():.4f}; keep rate {rho:.3f}")
assert p_test[pos].mean() < rho + 0.05 and (p_test[pos] > preset.tau).float().mean() < 0.01
assert (calib["mean score of the true positives"] < 0.5).all()

# %% [markdown]
# The true positives score near or below the keep rate, whatever the number of objects (printed
# above): the model has not learnt that a lone object is always observed, and it has no reason to
# score any present object near 1 when most present objects are unobserved. Fewer than 1 % of
# them score above $\tau$, so what BCE + CLML mines are rare exceptions. SPLC breaks the
# calibration on purpose: its focal, margin-shifted loss and its own correction push the scores of
# likely positives up, so the CLML correction finds more to mine. (Notebook 05 tries a lower
# $\tau$.)
#
# ## 9. Selected on validation vs best on test
#
# `summary` in `metrics.json` holds two numbers. **Selected on validation**: the (epoch,
# raw/EMA) pair with the best validation mAP (250 held-out training images with their full
# labels), and *its* test mAP: the honest number. **Best on test**: the maximum test mAP over
# epochs and raw/EMA, the protocol of the reference script, which selects on the test set. Their
# difference, the optimism gap, is $\ge0$ by construction. The selection rule written out,
# checked against every summary:

# %%
for key, (doc, df) in docs.items():
    cands = [(df.loc[e, v], df.loc[e, t]) for e in df.index
             for v, t in (("val", "test"), ("val_ema", "test_ema"))]
    chosen = max(cands, key=lambda c: c[0])[1]  # first maximum of val mAP: its test mAP
    assert np.isclose(chosen, doc["summary"]["test_mAP"])
    assert np.isclose(max(c[1] for c in cands), doc["summary"]["best_test_mAP"])
print("selection rule == summary for all", len(docs), "runs")

# %%
# NBVAL_IGNORE_OUTPUT
cols = ["selected_epoch", "selected_model", "val_mAP", "test_mAP", "best_test_epoch",
        "best_test_model", "best_test_mAP", "optimism_gap"]
table = pd.DataFrame({f"{arm}, seed {s}": doc["summary"] for (arm, s), (doc, _) in docs.items()}
                     ).T[cols]
print(table.to_string(float_format=lambda v: f"{v:.2f}"))
gaps = table["optimism_gap"].astype(float)
print(f"optimism gap: mean {gaps.mean():.2f}, largest {gaps.max():.2f} mAP over {len(gaps)} runs; "
      f"{int((gaps > 0).sum())} runs with a gap > 0 (chance level {CHANCE:.2f})")
assert (gaps >= 0).all() and (gaps > 0).any()  # never negative; here not zero everywhere

# %% [markdown]
# In the runs with a positive gap, validation chose another epoch or the other model than the
# one that happens to be best on test, and the reference protocol would report the larger,
# test-selected number. Selecting on test inflates every number, and by different amounts for
# two arms (compare the gaps of the arms of one seed): the honest comparison uses the
# selected-on-validation numbers only.
#
# ## 10. Does CLML help here? Paired gains with a 95 % interval
#
# Per seed $s$ the paired gain is $g_s=\mathrm{mAP}^{+CLML}_s-\mathrm{mAP}^{BCE}_s$ (val-selected
# test mAP). `clml_lib.stats.paired_t_interval` gives $\bar g\pm t_{0.975,n-1}\,s_g/\sqrt n$,
# and `stats.margin_verdict` reads it against 0 and a smallest effect of interest $\delta$
# (`stats.DEFAULT_SMALLEST_EFFECT`, the main job's value): "better by at least δ", "within ±δ",
# "inconclusive" and so on.

# %%
# NBVAL_IGNORE_OUTPUT
DELTA = stats.DEFAULT_SMALLEST_EFFECT
rows = pd.DataFrame({arm: [summaries[(arm, s)]["test_mAP"] for s in SEEDS]
                     for arm in ("BCE", "BCE +CLML")}, index=pd.Index(SEEDS, name="seed"))
rows["gain"] = rows["BCE +CLML"] - rows["BCE"]
print(rows.to_string(float_format=lambda v: f"{v:+.2f}" if abs(v) < 5 else f"{v:.2f}"))
ci = stats.paired_t_interval(rows["gain"])
print(f"\nBCE {rows['BCE'].mean():.2f} ± {rows['BCE'].std():.2f}, BCE +CLML "
      f"{rows['BCE +CLML'].mean():.2f} ± {rows['BCE +CLML'].std():.2f} (mean ± sd over seeds; "
      f"chance {CHANCE:.2f})")
print(f"paired gain over {ci.n} seeds: {ci.text()} (95 % t interval) -> "
      f"{stats.margin_verdict(ci, DELTA)} with δ = {DELTA}")
fig, ax = plt.subplots(figsize=(6.5, 2.2))
ax.plot(rows["gain"], np.zeros(len(rows)), "o", alpha=0.7, label="per-seed gain")
ax.errorbar([ci.mean], [0], xerr=[[ci.mean - ci.lo], [ci.hi - ci.mean]], fmt="D", color="k",
            capsize=6, label="mean, 95 % interval")
for v in (-DELTA, 0, DELTA):
    ax.axvline(v, color="0.5", lw=1, ls="-" if v == 0 else ":")
ax.set(yticks=[], xlabel="test mAP gain of BCE +CLML over BCE (dotted: ±δ)", title="paired seeds")
ax.legend(fontsize=9, loc="upper left")
plt.show()
assert ci.lo < ci.mean < ci.hi and abs(ci.mean) < 2.0

# %% [markdown]
# How to read it (the numbers are printed above):
#
# * The mAP varies from seed to seed (the sd of each arm): the hidden labels, the validation
#   images and the head differ per seed. Pairing removes that shared part, which is why the
#   interval is built from the per-seed *gains*.
# * With 3 seeds the t quantile is 4.30 and the interval is wide: this notebook shows the
#   mechanics, not the verdict. The main job (`bash scripts/main.sh`) runs the comparison with
#   10 paired seeds for BCE and SPLC under 40left and single; its tables and verdicts against
#   $\delta$ are in docs/results/ and the README.
#
# ## Summary
#
# * The teaching set's scenes make labels co-occur; the released recipe keeps one positive per
#   teaching image at 40left, so an object is observed with probability $1/n$ (34 % of all).
# * mAP is the mean over classes of the precision at each positive's rank; our ten lines equal
#   the library and scikit-learn; chance is the share of positives, not 0.
# * `Run.step` equals forward, `correct_labels`, summed BCE, the low-rank term, backward and
#   Adam's update with coupled decay on the weights only, written by hand; the low-rank term
#   carries a fraction of a per cent of the gradient at $\lambda=1$.
# * At $\tau=0.75$ the CLML correction mines almost nothing after BCE, whose scores of present
#   objects sit near the keep rate, and several times more, nearly all true, after SPLC.
# * The selected-on-validation number is the honest one (the optimism gap of best-on-test is
#   printed per run); a verdict on CLML needs paired seeds and an interval.
#
# ## Exercises
#
# Each exercise has a checker: replace `None` by your answer and run the cell. Written solutions
# and code: `notebooks/solutions/ch04.md` and `ch04.py`.
#
# 1. Compute by hand the AP of one class whose 6 images, ranked by score, carry the labels
#    `[1, 0, 1, 1, 0, 0]` (best first). Then check it with `average_precision`.

# %%
answer_1 = None  # a number in [0, 1]
_ = ch04.check_ap_by_hand(answer_1)

# %% [markdown]
# 2. For a short schedule (lr $3\cdot10^{-3}$, 3 epochs of 17 steps, OneCycle with 20 %
#    warm-up): at which 0-based step is the learning rate at its peak, and what is the learning
#    rate of the **last** step? Answer `(step, lr)`.

# %%
answer_2 = None  # (peak step, lr of the last step)
_ = ch04.check_onecycle(answer_2)

# %% [markdown]
# 3. With EMA decay $d$, what weight do the starting weights keep in the EMA after $T$ steps, and
#    after how many steps does it fall below 1 %? Give a function `f(d, T) -> weight`.

# %%
answer_3 = None  # a function f(d, T) -> weight of the starting weights
_ = ch04.check_ema_weight(answer_3)

# %% [markdown]
# 4. Write Adam's first step for one parameter tensor as a function
#    `f(theta, grad, lr, weight_decay) -> new theta` (coupled weight decay, $\beta_1=0.9$,
#    $\beta_2=0.999$, $\epsilon=10^{-8}$). The checker compares it with `torch.optim.Adam`.

# %%
answer_4 = None  # a function f(theta, grad, lr, weight_decay) -> theta after one Adam step
_ = ch04.check_adam_first_step(answer_4)

# %% [markdown]
# 5. Five paired seeds gave the gains `ch04.GAINS`. Compute the 95 % t interval of the mean gain
#    as `(lo, hi)` (without `clml_lib.stats`), and say which verdict it supports.

# %%
answer_5 = None  # (lo, hi)
_ = ch04.check_paired_interval(answer_5)

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
