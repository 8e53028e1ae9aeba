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
# # 00 · Overview: CLML in one page
#
# *Label Structure Preserving Contrastive Embedding for Multi-Label Learning with Missing
# Labels*, Ma, Li, Mao and Chen, [arXiv 2209.01314](https://arxiv.org/abs/2209.01314) (CLML).
#
# **What you will learn**
#
# 1. The problem: multi-label classification when annotators leave labels out, and why the usual
#    "assume negative" convention turns every missing positive into a **false negative**.
# 2. The paper in one page: label correction, per-label contrast, the low-rank local and global
#    terms, and how the CLML term is added to any base loss.
# 3. Where each symbol of the paper lives in `clml_lib` and in the official code.
# 4. What this implementation decided where the paper and its code leave a question open.
# 5. The roadmap of the notebooks that follow.
#
# **Prerequisites**: binary cross-entropy; what a singular value is. Everything else is built in
# notebooks 01-06.
#
# **Runs in** about 15–30 s on 2 CPU cores, most of it imports: 8 teaching images and random
# tensors, no training (the measured time, date and machine load: notebooks/run_times.json).
#
# Sources: the method as reconstructed in `docs/method.md` (the paper's body is not available; the
# equations come from the abstract, the paper's two figures and the official code, marked as
# such there); evaluation protocols and metric traps in `docs/evaluation.md`.

# %%
from clml_lib.nb import setup_notebook

setup_notebook(seed=0, threads=1)  # one torch thread, as every notebook and training worker

import pandas as pd
import torch

from clml_lib.data import TeachingMultiLabel, simulate_missing
from clml_lib.losses import CLMLLoss

# %% [markdown]
# ## 1. The problem: missing labels become false negatives
#
# An image $x_i$ carries a set of $C$ binary labels $\mathbf y_i\in\{0,1\}^C$ ("disc", "star",
# ...). Annotating every object of every image is expensive, so real training sets are
# *partially* labelled: some positives are simply not written down. The benchmark protocol hides
# positives at random, image by image: on COCO, **75left** and **40left** keep about 75 % and
# 40 % of the positive labels (an image with $n$ positives keeps $\lfloor n/2\rfloor+1$ or
# $\lfloor n/5\rfloor+1$ of them), **single** keeps one per image.
#
# The training label matrix cannot tell "absent" from "not annotated": both are 0. The standard
# convention, **assume negative**, trains on these zeros as negatives. A missing positive is
# then a **false negative**: the base loss pushes its probability down, and a contrastive loss
# would use the image as a *negative* of the very label it carries.
#
# A tiny example on the teaching set (12 shape classes, notebook 01 uses it at length). We hide
# positives as in the 40left setting and compare the observed matrix with the truth:
# `1` = observed positive, `FN` = a positive that was hidden (the training matrix holds 0 there),
# `.` = a true negative.

# %%
demo = TeachingMultiLabel("train", num_images=8, seed=0)
truth, classes = demo.labels, demo.classes  # (8, 12) full labels, 12 names
observed = simulate_missing(truth, "40left", seed=0)  # (8, 12) 1/0, assume-negative
cells = [
    ["1" if o else ("FN" if t else ".") for o, t in zip(orow, trow)]
    for orow, trow in zip(observed.tolist(), truth.tolist())
]
table = pd.DataFrame(cells, columns=classes, index=[f"img{i}" for i in range(8)])
print(table.to_string())
n_pos, n_obs = int(truth.sum()), int(observed.sum())
print(f"true positives {n_pos}, observed {n_obs}, false negatives {n_pos - n_obs}")
fn_of_zeros = (n_pos - n_obs) / (truth.numel() - n_obs)
fn_of_positives = (n_pos - n_obs) / n_pos
print(f"zeros in the training matrix that are really positives: {fn_of_zeros:.3f}")
print(f"positives hidden (false negatives / true positives): {fn_of_positives:.3f}")
assert bool((observed <= truth).all()) and bool((observed.sum(1) >= 1).all())
assert fn_of_zeros < 0.5 < fn_of_positives  # a minority of the zeros, most of the positives

# %% [markdown]
# Every image keeps at least one positive, and only positives are ever removed. Most zeros are
# still true negatives (the classes are sparse), so the false negatives are a minority of the
# zeros, but most of the *positives* (both shares printed above; the cell asserts it).
#
# ## 2. The paper in one page
#
# CLML is a loss term added to any multi-label loss. Per mini-batch of $N$ images it uses the
# logits $\mathbf S\in\mathbb R^{N\times C}$ and the latent features
# $\mathbf Z=[\mathbf z_1;\dots;\mathbf z_N]\in\mathbb R^{N\times D}$ (the global-average-pooled
# backbone output, $D=2048$ for ResNet-101). Three ideas:
#
# 1. **Label correction** (false-negative mining, docs/method.md §2.1). From the second epoch on, an
#    unobserved label whose predicted probability is above a threshold $\tau$ is treated as
#    positive:
#    $\hat y_{ik}=1$ if $y_{ik}=1$, or if $y_{ik}=0$, $e\ge e_0$ and $\sigma(s_{ik})>\tau$;
#    otherwise $0$. Recomputed from the current logits at every step, without gradient.
# 2. **Per-label contrast** (docs/method.md §2.2). For an anchor $i$ and each label $k$ it carries,
#    the positives are the other images with $\hat y_{jk}=1$ (observed or mined), the negatives
#    those with $\hat y_{jk}=0$. Correction moves the mined false negatives from the negatives to
#    the positives.
# 3. **Low-rank local and global terms** (docs/method.md §2.3). The official code does not compare
#    pairs:
#    it asks the features of each label, $\mathbf Z_k=\mathbf Z_{\mathcal P_k,:}$ with
#    $\mathcal P_k=\{i:\hat y_{ik}=1\}$, to be **low rank** (pull together) and the whole batch
#    $\mathbf Z$ to be **high rank** (push labels apart), with the nuclear norm
#    $\lVert\cdot\rVert_*$ (the sum of singular values):
#
# $$
# \boxed{\;\mathcal L_{\text{CLML}}(\mathbf Z,\hat{\mathbf
# Y})=\frac{\lambda}{N}\Big(\sum_{k=1}^{C}\max\big(\Delta,\ \lVert\mathbf
# Z_k\rVert_*\big)\;-\;\lVert\mathbf Z\rVert_*\Big),\qquad \Delta=1\;}
# $$
#
# **Combination with a base loss** (docs/method.md §2.4): the base loss sees the *observed* labels,
# the
# CLML term the *corrected* ones, and a single weight $\lambda$ sits inside the CLML term:
#
# $$
# \mathcal L=\mathcal L_{\text{base}}(\mathbf S,\mathbf y)\;+\;\mathcal L_{\text{CLML}}(\mathbf
# Z,\hat{\mathbf Y};\lambda).
# $$
#
# The base loss (BCE, Focal, Hill, SPLC in the official code) is **summed** over the batch and
# the classes, while the CLML term is divided by $N$: $\lambda$'s effective strength depends on
# that convention (notebooks 05 and 06).
#
# Per iteration: forward $\mathbf Z$, $\mathbf S$; base loss on $\mathbf y$; $\hat{\mathbf Y}$
# from $\sigma(\mathbf S)$; one nuclear norm per label present plus one for $\mathbf Z$;
# back-propagate the sum; Adam step; EMA update.
#
# One call of `CLMLLoss` on random tensors shows the parts. We reuse the observed labels of the
# 8 images above, random logits and random post-ReLU features ($D=16$), at epoch $e=1$ so that
# correction is on.

# %%
g = torch.Generator().manual_seed(0)
N, C, D = observed.shape[0], observed.shape[1], 16
logits = 2.0 * torch.randn(N, C, generator=g, dtype=torch.float64)  # (N, C) S
features = torch.randn(N, D, generator=g, dtype=torch.float64).relu()  # (N, D) Z
criterion = CLMLLoss("BCE", lambda_=1.0, tau=0.75, start_epoch=1)
parts = criterion.forward_parts(logits, features, observed.double(), epoch=1)
print(
    f"base {parts.base.item():.4f}  low_rank {parts.low_rank.item():.4f}  "
    f"pairwise {parts.pairwise.item():.4f}  total {parts.total.item():.4f}"
)
print(
    f"mined labels: {int(parts.mined.sum())} (of {int((observed == 0).sum())} zeros), "
    f"of which truly positive: {int((parts.mined & (truth == 1)).sum())}"
)

# %% [markdown]
# With random logits, correction mines whatever happens to score above $\tau$: most of those
# labels are wrong. In training, correction waits for $e\ge e_0$ so that the classifier has
# learned something first (notebook 01 measures the precision of the mined labels).
#
# The same numbers from the equations, written out with `torch.linalg.svdvals` (float64):
# BCE summed over the batch and classes, and the boxed CLML term on the corrected labels.

# %%
p = torch.sigmoid(logits)  # (N, C)
y = observed.double()  # (N, C)
base = -(y * p.clamp_min(1e-8).log() + (1 - y) * (1 - p).clamp_min(1e-8).log()).sum()
Y_hat = ((y == 1) | (torch.sigmoid(logits) > 0.75)).double()  # (N, C) epoch 1 >= e_0
nuc = lambda A: torch.linalg.svdvals(A).sum()  # nuclear norm; 0 for an empty (0, D) matrix  # noqa: E731
local = sum(max(1.0, nuc(features[Y_hat[:, k] == 1]).item()) for k in range(C))
clml = 1.0 / N * (local - nuc(features).item())
print(f"scratch: base {base.item():.4f}  clml {clml:.4f}  total {base.item() + clml:.4f}")
ok = [
    torch.allclose(parts.base, base),
    torch.allclose(parts.low_rank, torch.tensor(clml, dtype=torch.float64)),
    torch.equal(parts.corrected, Y_hat),
]
print(ok)
assert all(ok)

# %% [markdown]
# ## 3. Paper symbols, `clml_lib` names and the official code
#
# The official code is github.com/chuangua/ContrastiveLossMLML (`train_clml.py`,
# `ConLoss_MLML.py`: the `CLML` module and the `CLLoss` autograd Function). "TrainConfig" fields
# are the parameters of `clml_lib.train.fit` and of `notebooks/reproduce.ipynb`.
#
# * $\mathbf Z$, $\mathbf z_i$: batch features $(N,D)$: post-ReLU GAP vector, unnormalised.
#   `clml_lib`: `features` (2nd output of `build_model(...)(x)`). Official code: `feature` in the
#   training loop, `X` in `CLLoss`.
# * $\mathbf Z_k$: rows of $\mathbf Z$ whose corrected label $k$ is 1. `clml_lib`:
#   `features[corrected[:, k] == 1]` (batched in `low_rank_terms`). Official code:
#   `A = X[y[:, c] == 1, :]`.
# * $\mathbf Y$, $\mathbf y_i$: observed labels, 1/0 (assume-negative); 1/0/-1 accepted.
#   `clml_lib`: `labels` / `observed`; `simulate_missing`, TrainConfig `setting` / `label_list`.
#   Official code: `target`; the split file `--dataset` (e.g. `coco_train_0.4left.txt`).
# * $\hat{\mathbf Y}$: labels after correction. `clml_lib`: `correct_labels`,
#   `mine_false_negatives`, `LossParts.corrected` / `.mined`. Official code: `targets` after
#   `torch.where(...)` in `CLML.forward`.
# * $\mathbf S$, $s_{ik}$: logits. `clml_lib`: `logits`. Official code: `output`.
# * $\lambda$: weight of the CLML term. `clml_lib`: `CLMLLoss(lambda_=)`, TrainConfig `lambda_`.
#   Official code: `--lambda_` (`lam`, `lambda_`).
# * $\tau$: correction threshold (strict $>$ on $\sigma(s)$). `clml_lib`: `tau`. Official code:
#   `--threshold` (`CLML(tau=)`; class default 0.7).
# * $e_0$: first (0-based) epoch with correction. `clml_lib`: `start_epoch`. Official code:
#   `change_epoch=1` (`--NeEpoch` in later versions).
# * $\Delta$: floor on each $\lVert\mathbf Z_k\rVert_*$. `clml_lib`: `delta`. Official code:
#   hard-coded `DELTA = 1.`.
# * $N$: batch size. `clml_lib`: TrainConfig `batch_size`. Official code: `-b` / `--batch-size`
#   (default 16; README 64).
# * $C$: number of labels. `clml_lib`: `num_classes`, `len(dataset.classes)`. Official code:
#   `--num-classes`.
# * $D$: feature dimension. `clml_lib`: `model.feature_dim`. Official code: 2048 (ResNet-101,
#   hard-coded backbone).
# * $\epsilon$: singular-value cut-off. `clml_lib`: `eps=1e-6` (`clml_lib.losses.nuclear.SVD_EPS`,
#   plus `rel_eps`). Official code: hard-coded `eigThd = 1e-6`.
# * $\mathcal L_{\text{base}}$: base multi-label loss, summed. `clml_lib`: `make_base_loss(name)`,
#   TrainConfig `base_loss`, `reduction`. Official code: `--loss {BCE,Focal,Hill,SPLC}` (`crit1`).
# * use CLML: add the low-rank term. `clml_lib`: TrainConfig `use_clml` (`CLMLLoss(use_clml=)`).
#   Official code: `--use_clml` (`--useclml` at first; `type=bool`, so "False" is True).
# * $T$: temperature of the optional pairwise term. `clml_lib`: `temperature` (with
#   `pairwise_weight`). Official code: none: the official loss has no temperature.

# %% [markdown]
# ## 4. Decisions on the open questions (docs/method.md §6)
#
# One line each, with the module that implements it.
#
# 1. **Loss form**: the boxed nuclear-norm objective on corrected labels; the explicit pairwise
#    term of the abstract is an option, `pairwise_weight` (default 0). `clml_lib.losses.clml`,
#    `clml_lib.losses.contrastive`.
# 2. **Gradient**: the true subgradient $\mathbf U_r\mathbf V_r^\top$ through autograd, so
#    GradScaler scales it like the base loss (the official custom backward ignores
#    `grad_output`). `clml_lib.losses.nuclear`; the official path for the audit in
#    `clml_lib.losses.official`.
# 3. **$\lambda$ placement**: the 2023 form $\lambda(\sum-\lVert\mathbf Z\rVert_*)/N$, `'2022'`
#    available (`lambda_placement`); base loss summed, `equivalent_lambda` converts for `'mean'`;
#    $1/N$ kept. `clml_lib.losses.clml`, `clml_lib.losses.base`.
# 4. **$\Delta$ floor**: kept, $\Delta=1$; an absent label adds the constant $\Delta$ without
#    gradient. `clml_lib.losses.nuclear`.
# 5. **Representation**: the model's GAP features, unnormalised, no projection head.
#    `clml_lib.models`.
# 6. **Correction**: strict $>$, from the current raw (not EMA) logits at every step, detached,
#    from $e_0=1$; it feeds the CLML term only unless `correct_base_targets=True`.
#    `clml_lib.losses.correction`, `clml_lib.train.engine`.
# 7. **Batch size**: 64 in the paper presets. `clml_lib.reproduce.presets`, `params/*.yaml`.
# 8. **Schedule and selection**: OneCycle over 80 epochs stopped after epoch index 25; the epoch
#    and raw/EMA model are selected on a validation split carved from the training set, and the
#    reference's best-on-test number is reported beside it. `clml_lib.train.engine`.
# 9. **Inputs**: squash-resize to 448, Cutout 0.5 + RandAugment, ImageNet normalisation off
#    (`normalize` switch). `clml_lib.data.transforms`.
# 10. **Datasets**: VOC 2007 trainval/test; NUS-WIDE from the CLML repository's lists (the
#     malformed line read as class 2). `clml_lib.data.voc`, `clml_lib.data.nus`.
# 11. **Base losses**: BCE, Focal, ASL, Hill, SPLC with the reference hyper-parameters.
#     `clml_lib.losses.base`.
# 12. **Numerics**: Gram matrices and `eigh` in float64, one batched `eigh` per size bucket
#     instead of $C+1$ SVDs; cut-off $\max(10^{-6}, 10^{-6}\sigma_{\max})$.
#     `clml_lib.losses.nuclear`.
# 13. **Metrics**: mAP as the reference computes it (ties grouped), plus CP/CR/CF1/OP/OR/OF1;
#     raw and EMA both evaluated. `clml_lib.metrics`, `clml_lib.train.engine`.
# 14. **Targets**: only the abstract's +1.2 / +1.6 / +1.3 mAP are known, so a run is judged by its
#     gain over its own baseline under identical settings, over several seeds.
#     `clml_lib.reproduce`.

# %% [markdown]
# ## 5. Roadmap
#
# * `01_false_negative_mining`: missing labels on the teaching set; how naive negatives become
#   false negatives; label correction with $\tau$; precision and recall of the mined labels;
#   `correct_labels`.
# * `02_contrastive_loss`: from SupCon to per-label positives and negatives;
#   `label_contrastive_loss` from a loop, vectorised, library; why the nuclear-norm objective is
#   contrastive too.
# * `03_low_rank_terms`: nuclear norm and its subgradient $\mathbf U\mathbf V^\top$ (finite
#   differences, gradcheck); the local and global terms; the $\Delta$ floor; the Gram/`eigh`
#   batching; spectra of real embeddings.
# * `04_train_with_clml`: BCE with and without CLML on the teaching set under 40left: mAP curves,
#   mined-label precision/recall, val-selected vs best-on-test mAP.
# * `05_ablations`: $\lambda$ and $\tau$ chosen on validation; the four columns of the paper's
#   t-SNE figure (base, + low-rank, + correction, + CLML) as PCA of the test features, with a
#   measure of label structure beside it; the "as released" arm.
# * `06_official_code_audit`: the official code's defects measured: the GradScaler-divided
#   gradient, $\lambda$ placement, the $\Delta$ floor, sum vs mean reduction.
# * `reproduce`: the parameterised notebook papermill runs for every experiment (`params/*.yaml`).
#
# ## Summary
#
# * Under assume-negative training, every hidden positive is a false negative: for the base loss
#   and for any contrastive loss that takes "0" for "negative".
# * CLML corrects labels ($\sigma(s)>\tau$ from epoch $e_0$), then asks each label's features to
#   be low rank and the batch's features to be high rank, weighted by a single $\lambda$ and added
#   to a summed base loss.
# * `CLMLLoss.forward_parts` returns the base and CLML parts and the corrected and mined labels;
#   here they match the equations written out by hand.
# * Where the paper is silent, this implementation follows the official code, except for the
#   gradient, which it makes correct (notebook 06).
#
# ## Exercises
#
# Each exercise has a checker: replace `None` by your answer and run the cell. Written solutions
# and code: `notebooks/solutions/ch00.md` and `ch00.py`.
#
# 1. Re-run the label-matrix cell of section 1 with `"75left"` and `"single"`. What share of the
#    zeros of the training matrix are really positives? Answer as `{"75left": ..., "single": ...}`.

# %%
from clml_lib.exercises import ch00

answer_1 = None  # {"75left": ..., "single": ...}
_ = ch00.check_false_negative_share(answer_1)

# %% [markdown]
# 2. In the `CLMLLoss` call of section 2, set `epoch=0`. How many labels are mined, and which part
#    changes: `"base"`, `"low_rank"`, `"both"` or `"none"`? Why?

# %%
answer_2 = None  # {"mined": ..., "changed": ...}
_ = ch00.check_epoch_zero(answer_2)

# %% [markdown]
# 3. Multiply `features` by 10 (at `epoch=1`). By what factor does the CLML part change, and what
#    does the $\Delta$ floor have to do with it?

# %%
answer_3 = None  # the ratio (float)
_ = ch00.check_feature_scale(answer_3)

# %% [markdown]
# 4. With `reduction='mean'`, what $\lambda$ keeps the same balance between the two terms as
#    $\lambda=1$ with the summed base loss, for $N=64$, $C=80$? (Hint:
#    `clml_lib.losses.equivalent_lambda`.)

# %%
answer_4 = None  # lambda for reduction='mean'
_ = ch00.check_equivalent_lambda(answer_4)
