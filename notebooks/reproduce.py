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
# # Reproduce CLML: one training run, its curves and its honest numbers
#
# This notebook trains one multi-label classifier with a base loss (BCE, Focal, ASL, Hill or
# SPLC), with or without the CLML term of the paper (arXiv 2209.01314), i.e. with the total loss
# $\mathcal{L} = \mathcal{L}_{base} + \lambda\,\mathcal{L}_{CLML}$ (the base loss plus $\lambda$
# times the low-rank contrastive term), on a training set whose labels were partly hidden
# (`setting`: full, 75left, 40left or single). All the work is done by `clml_lib.train.fit`; this
# notebook only sets the parameters, calls it, and reads back `out_dir/metrics.json`:
#
# 1. the training-loss parts per epoch (base loss, low-rank CLML term, optional pairwise term);
# 2. validation and test mAP of the raw and the EMA model per epoch;
# 3. precision and recall of the labels mined by the label correction (against the hidden truth);
# 4. the per-class test AP of the selected model;
# 5. the summary: test mAP of the epoch **selected on the held-out validation split** next to
#    the reference's **best epoch on the test set**, and the gap between them (the optimism of
#    selecting on test).
#
# The last cells are checks (finite losses, mAP in [0, 100], files written) that raise
# `AssertionError`, so a broken run fails papermill and nbval loudly.
#
# **Runs in** about 30 s on 2 CPU cores with the defaults below, which are the teaching regime of
# the main job (docs/teaching_regime.md: the pretrained small ResNet fine-tuned for 6 epochs on
# 2,500 teaching images); a photo dataset at the paper's recipe needs a GPU. A grid of many
# runs is faster without a notebook per run:
# `python -m clml_lib.reproduce --grid teaching --runner process --jobs 2` calls the same `fit`
# on the same configurations in long-lived worker processes.
#
# **Parameters.** The parameters cell below is generated from the run schema
# (`clml_lib.train.TrainConfig`, listed in `docs/configuration.md`); a test keeps it equal to the
# schema, defaults included. The defaults are one run of the teaching regime (CPU; the epoch
# lines below print the timings). Parameter files in `params/` are layers
# on top of them, composed in order as papermill composes `-f` files, then `-p` values win.
#
# **How to run.** Never run papermill in place on this file; write the executed copy to `runs/`:
#
# ```bash
# papermill notebooks/reproduce.ipynb runs/teaching/reproduce.ipynb -f params/teaching.yaml \
#     -k python3 --cwd . --log-output
# papermill notebooks/reproduce.ipynb runs/coco/reproduce.ipynb -f params/paper.yaml \
#     -p data_root /data/coco -p setting 40left -p base_loss Focal -k python3 --log-output
# python -m clml_lib.reproduce --grid teaching      # a grid of layers x axes x seeds, then a table
# ```
#
# Relative paths (`data_root`, `label_list`, `weights_path`, `out_dir`) are taken from the project
# root, whatever the working directory. The source of this notebook is `notebooks/reproduce.py`
# (jupytext percent format); after editing it, regenerate and execute the `.ipynb`.

# %%
# The names that exist before the parameters: the cell after the parameters collects every
# name defined since, so a parameter papermill injects that the cell below lacks (a typo such
# as `-p lamda_ 2`) reaches `TrainConfig.from_dict` and fails there instead of being ignored
_names_before_parameters = set(globals())

# %% tags=["parameters"]
# Data and missing labels
dataset: str = "teaching"  # dataset to train and test on (teaching | coco | voc | nus)
data_root: str = ""  # dataset root folder (unused for teaching)
label_list: str = ""  # optional training label list (split file); overrides setting
setting: str = "40left"  # positive labels left in training (full | 75left | 40left | single)
split_seed: int = 0  # seed of the missing-label draw and of the validation carve-out
# Loss: base loss plus CLML
base_loss: str = "BCE"  # base multi-label loss (BCE | ASL | Focal | Hill | SPLC)
base_loss_args: dict = {}  # own hyper-parameters of the base loss, e.g. {gamma: 3.0}
use_clml: bool = True  # add lambda_ times the CLML low-rank term
use_correction: bool = True  # label correction (false-negative mining) for the CLML term
correct_base_targets: bool = False  # also feed the corrected labels to the base loss
lambda_: float = 1.0  # weight of the CLML term (lambda)
tau: float = 0.75  # correction threshold on sigmoid scores (tau)
start_epoch: int = 1  # first epoch index at which correction mines labels (e0)
delta: float = 1.0  # floor of each per-label nuclear norm (Delta)
pairwise_weight: float = 0.0  # weight of the explicit pairwise contrastive term
temperature: float = 0.1  # temperature of the pairwise contrastive term
reduction: str = "sum"  # base-loss reduction (reference: sum) (sum | mean)
# Schedule and optimiser
epochs: int = 6  # OneCycle schedule length in epochs
stop_epoch: int = -1  # last epoch index trained; -1 trains all epochs
batch_size: int = 64  # images per optimiser step (global under DDP)
image_size: int = 32  # input side in pixels
lr: float = 0.01  # peak learning rate of Adam with OneCycle
weight_decay: float = 0.0001  # coupled L2 weight decay (none on biases and norms)
ema_decay: float = 0.9  # decay of the moving average of the weights (EMA)
amp: str = "none"  # mixed precision (fp16 uses a GradScaler) (none | bf16 | fp16)
# Model
backbone: str = "small_resnet"  # torchvision classification model name, small_resnet or tiny_cnn
weights_path: str = "data/teaching_backbone.pt"  # empty: random; imagenet; or a weights-only .pt
normalize: bool = False  # ImageNet mean and std normalisation (reference: off)
augment: bool = True  # training augmentation (teaching: flips; photos: Cutout+RandAugment)
input_pipeline: str = "pil"  # PIL or tensor augmentation (tensor: experimental) (pil | tensor)
# Selection, size and machine
val_fraction: float = 0.1  # validation share carved from the training set
num_train_images: int = 2500  # training images (teaching: generated); 0 uses all
num_workers: int = 0  # DataLoader worker processes (changes the random stream)
device: str = "cpu"  # torch device (cpu | cuda | cuda:N)
seed: int = 0  # seed of initialisation, batch order and augmentation
deterministic: bool = True  # deterministic kernels and no cuDNN autotuning
out_dir: str = "runs/reproduce"  # run folder for metrics.json and checkpoint.pt
progress: bool = False  # tqdm progress bars
verbose: bool = True  # one line per epoch (false: one summary line)
max_train_batches: int = 0  # cap on training batches per epoch; 0 for no cap
max_eval_batches: int = 0  # cap on evaluation batches; 0 for no cap
resume: bool = False  # resume from out_dir/checkpoint.pt when present
ddp_gather: bool = True  # under torchrun: losses on the batch gathered from every rank

# %%
# Every parameter: the names defined since the snapshot, by the parameters cell above and by
# papermill's injected cell
parameters = {
    name: value
    for name, value in globals().items()
    if name not in _names_before_parameters and not name.startswith("_")
}
from clml_lib.nb import setup_notebook  # noqa: E402

# One intra-op thread: on the 2-core CI machine two threads made these small CPU runs 2 to 8x
# slower (a short teaching run: 7 s vs 17-26 s at load 3, 21 s vs 170 s at load 10). Plot settings
# (and the matplotlib import) wait for the first figure.
setup_notebook(seed, threads=1, plots=False)

# %%
import dataclasses  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402

import pandas as pd  # noqa: E402

from clml_lib.paths import resolve  # noqa: E402
from clml_lib.train import TrainConfig, fit  # noqa: E402

missing = sorted({f.name for f in dataclasses.fields(TrainConfig)} - set(parameters))
if missing:  # run the notebook from the top: the parameters cell must define every field
    raise ValueError(f"parameters missing from the parameters cell: {missing}")
cfg = TrainConfig.from_dict(parameters)  # unknown names and bad values raise ValueError here
for name, value in dataclasses.asdict(cfg).items():
    print(f"{name:>22} = {value!r}")

# %% [markdown]
# ## Train
#
# `fit` validates the whole configuration (data layout, weights file, writable `out_dir`)
# before the first step, then trains, evaluates the raw and the EMA model on the validation and
# the test split after every epoch, and rewrites `metrics.json` and `checkpoint.pt` atomically.

# %%
# NBVAL_IGNORE_OUTPUT
summary = fit(cfg)  # prints one line per epoch (with timings) when verbose

# %%
out = resolve(cfg.out_dir)
metrics = json.loads((out / "metrics.json").read_text())
epochs_df = pd.json_normalize(metrics["epochs"]).set_index("epoch")
classes = metrics["classes"]
print(f"{len(epochs_df)} epochs, {len(classes)} classes, written to {cfg.out_dir}")
print("data:", metrics.get("data", {}))

# %% [markdown]
# ## Curves
#
# Top: the training loss averaged over the steps of each epoch, split into the base loss (with
# `reduction`) and the CLML terms as added to the total ($\lambda\,\mathcal{L}_{CLML}$ and the
# optional pairwise term; zero when `use_clml` is off). Bottom left: mAP of the raw and the EMA
# weights on the validation split (used for model selection) and on the test split. Bottom right:
# the labels that the correction added (score above $\tau$ on an observed negative), scored
# against the labels that the missing-label simulation hid.
#
# **Reading the EMA curve.** The EMA weights are updated once per step,
# $\theta_{EMA} \leftarrow d\,\theta_{EMA} + (1 - d)\,\theta$ with $d$ = `ema_decay`, starting from
# the initial (random) weights and without warm-up. They average the weights of roughly the last
# $1/(1-d)$ steps (the time constant), and after $t$ steps the initial weights still make up a
# share $d^t$ of them. When the run is not much longer than the time constant, the EMA is mostly
# an average of early, poor weights and its mAP stays flat far below the raw model's: with
# $d = 0.99$ (a time constant of 100 steps) a run of 140 steps ends with $0.99^{140} \approx 0.25$
# of the EMA still made of the random initial weights. The cell below prints both numbers for
# this run; the EMA can only help when the run is several time constants long.

# %%
total_steps = int(epochs_df["steps"].sum())
time_constant = 1.0 / (1.0 - cfg.ema_decay)
print(f"EMA decay {cfg.ema_decay}: time constant 1/(1 - d) = {time_constant:.0f} steps; "
      f"this run: {total_steps} steps ({total_steps / time_constant:.1f} time constants); "
      f"share of the initial weights left in the EMA: d^steps = "
      f"{cfg.ema_decay ** total_steps:.2g}")

# %%
import matplotlib.pyplot as plt  # noqa: E402

from clml_lib.nb import setup_plots  # noqa: E402

setup_plots()
fig, axes = plt.subplots(2, 2, figsize=(12, 7))
ax = axes[0, 0]
for part in ("loss", "base"):
    ax.plot(epochs_df.index, epochs_df[f"train.{part}"], marker="o", label=part)
ax.set(xlabel="epoch", ylabel="mean loss per step", title="training loss: total and base")
ax.legend()
ax = axes[0, 1]
for part in ("low_rank", "pairwise"):
    ax.plot(epochs_df.index, epochs_df[f"train.{part}"], marker="o", label=part)
ax.set(xlabel="epoch", ylabel="mean loss per step", title="CLML terms (weighted)")
ax.legend()
ax = axes[1, 0]
for split, style in (("val", "--"), ("test", "-")):
    for key, name in (("mAP", "raw"), ("mAP_ema", "EMA")):
        ax.plot(epochs_df.index, epochs_df[f"{split}.{key}"], style, marker="o",
                label=f"{split} {name}")
ax.axvline(metrics["summary"]["selected_epoch"], color="grey", lw=0.8, ls=":")
ax.set(xlabel="epoch", ylabel="mAP (%)", title="mAP (dotted: epoch selected on val)")
ax.legend()
ax = axes[1, 1]
mined = epochs_df[["mined.count", "mined.precision", "mined.recall"]].astype(float)
ax.bar(mined.index, mined["mined.count"], color="lightgrey", label="labels mined")
ax.set(xlabel="epoch", ylabel="labels mined per epoch", title="mined labels vs hidden truth")
if mined["mined.count"].sum() > 0:
    twin = ax.twinx()
    for col in ("mined.precision", "mined.recall"):
        twin.plot(mined.index, 100 * mined[col], marker="o", label=col.split(".")[1])
    twin.set(ylabel="%", ylim=(0, 105))
    twin.legend(loc="upper left")
else:
    ax.text(0.5, 0.5, "no label mined\n(correction off, nothing hidden,\nor no score above tau)",
            ha="center", va="center", transform=ax.transAxes)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Per-class AP of the selected model
#
# The model (raw or EMA weights, at the epoch) that scored best on the validation split,
# evaluated on the test split. Classes sorted by AP.

# %%
selected = metrics["summary"]["selected_model"]
per_class = metrics["per_class_ap"]["test_ema" if selected == "ema" else "test"]
ap_df = pd.DataFrame({"class": classes, "AP": pd.Series(per_class, dtype=float)})
ap_df = ap_df.sort_values("AP", na_position="first")  # no AP: a class without test positives
fig, ax = plt.subplots(figsize=(6, 0.6 + 0.18 * len(ap_df)))
ax.barh(ap_df["class"], ap_df["AP"].fillna(0.0), color="tab:blue")  # best class on top
ax.axvline(ap_df["AP"].mean(), color="black", lw=0.8, ls="--")
ax.set(xlabel="test AP", ylabel="", title=f"per-class test AP ({selected} model, dashed: mean)")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Summary: two model-selection protocols
#
# *Selected on val* is the honest number: the epoch and weights (raw or EMA) chosen on a
# validation split carved from the training set, then scored once on the test split. *Best on
# test* is what the reference script reports: the best test mAP over all epochs and both
# weights, i.e. model selection on the test set. The difference is the optimism of that
# protocol.

# %%
# NBVAL_IGNORE_OUTPUT
# (trained numbers depend on the CPU's floating-point summation order; the checks below guard them)
s = metrics["summary"]
summary_table = pd.DataFrame(
    {
        "test mAP": [s["test_mAP"], s["best_test_mAP"]],
        "epoch": [s["selected_epoch"], s["best_test_epoch"]],
        "weights": [s["selected_model"], s["best_test_model"]],
    },
    index=["selected on val (honest)", "best on test (reference)"],
).round(2)
print(summary_table.to_string())
print(f"optimism gap: {s['optimism_gap']:+.2f} mAP (val mAP of the selection: {s['val_mAP']:.2f})")

# %% [markdown]
# ## Checks
#
# These raise `AssertionError` so that papermill (and nbval, which re-executes this notebook)
# fail loudly on a broken run.

# %%
for name in ("metrics.json", "checkpoint.pt", "config.json"):
    assert (out / name).is_file(), f"{out / name} was not written"
expected_epochs = cfg.epochs if cfg.stop_epoch < 0 else min(cfg.stop_epoch + 1, cfg.epochs)
assert s["finished"], "metrics.json summary says the run did not finish"
assert s["epochs_run"] == expected_epochs == len(epochs_df), (
    f"expected {expected_epochs} epochs, summary says {s['epochs_run']}, "
    f"metrics.json has {len(epochs_df)}"
)
assert list(epochs_df.index) == list(range(expected_epochs)), list(epochs_df.index)
for part in ("loss", "base", "low_rank", "pairwise"):
    values = epochs_df[f"train.{part}"]
    assert values.map(math.isfinite).all(), f"non-finite train.{part}: {values.tolist()}"
map_columns = ["val.mAP", "val.mAP_ema", "test.mAP", "test.mAP_ema"]
for col in map_columns:
    assert epochs_df[col].between(0, 100).all(), f"{col} outside [0, 100]: {epochs_df[col]}"
for key in ("val_mAP", "test_mAP", "best_test_mAP"):
    assert 0 <= s[key] <= 100, f"summary {key} = {s[key]} outside [0, 100]"
assert s["best_test_mAP"] >= s["test_mAP"] - 1e-9, "best-on-test is below the selected model"
assert abs(s["optimism_gap"] - (s["best_test_mAP"] - s["test_mAP"])) < 1e-6, s
assert len(per_class) == len(classes), (len(per_class), len(classes))
assert metrics["config"]["use_clml"] == cfg.use_clml and metrics["config"]["seed"] == cfg.seed
print(f"all checks passed ({expected_epochs} epochs, {len(classes)} classes)")
