r"""The CLML loss family (docs/method.md §2).

* :func:`correct_labels`, :func:`mine_false_negatives`: false-negative mining (2.1).
* :func:`label_contrastive_loss`: per-label positives and negatives of an anchor (2.2).
* :func:`nuclear_norm`, :func:`low_rank_loss`, :func:`low_rank_loss_reference`: the low-rank
  local and global terms (2.3, 2.5).
* :class:`BCELoss`, :class:`FocalLoss`, :class:`AsymmetricLoss`, :class:`HillLoss`,
  :class:`SPLCLoss`, :func:`make_base_loss`: base losses (2.4), registered by name in
  :data:`BASE_LOSSES` (:func:`register_base_loss`; :func:`base_loss_defaults` lists a loss's own
  hyper-parameters, :func:`check_base_loss_args` checks values for them).
* :class:`CLMLLoss`: base + CLML, with the ablation switches.
* :func:`official_style_low_rank`: the official gradient path, for the audit only (5.5).

Allowed hyper-parameter ranges (:class:`clml_lib.checks.Range`), each declared once beside the
object that uses it and imported by the training config: ``LAMBDA_RANGE``, ``DELTA_RANGE``,
``PAIRWISE_WEIGHT_RANGE`` (CLMLLoss), ``TAU_RANGE``, ``START_EPOCH_RANGE`` (correction),
``TEMPERATURE_RANGE`` (pairwise term), ``EPS_RANGE``, ``GAMMA_RANGE``, ``CLIP_RANGE``,
``MARGIN_RANGE``, ``HILL_LAMBDA_RANGE``, ``SPLC_TAU_RANGE`` (base losses).
"""

from .base import (
    BASE_LOSSES,
    CLIP_RANGE,
    EPS_RANGE,
    GAMMA_RANGE,
    HILL_LAMBDA_RANGE,
    MARGIN_RANGE,
    REDUCTIONS,
    SPLC_TAU_RANGE,
    AsymmetricLoss,
    BCELoss,
    FocalLoss,
    HillLoss,
    MultiLabelLoss,
    SPLCLoss,
    base_loss_class,
    base_loss_defaults,
    check_base_loss_args,
    equivalent_lambda,
    make_base_loss,
    register_base_loss,
)
from .clml import (
    ABLATIONS,
    DELTA_RANGE,
    LAMBDA_RANGE,
    PAIRWISE_WEIGHT_RANGE,
    CLMLLoss,
    LossParts,
    check_correction_switches,
)
from .contrastive import TEMPERATURE_RANGE, label_contrastive_loss
from .correction import START_EPOCH_RANGE, TAU_RANGE, correct_labels, mine_false_negatives
from .nuclear import low_rank_loss, low_rank_loss_reference, low_rank_terms, nuclear_norm
from .official import OfficialStyleLowRank, official_style_low_rank

__all__ = [
    "ABLATIONS",
    "BASE_LOSSES",
    "CLIP_RANGE",
    "DELTA_RANGE",
    "EPS_RANGE",
    "GAMMA_RANGE",
    "HILL_LAMBDA_RANGE",
    "LAMBDA_RANGE",
    "MARGIN_RANGE",
    "PAIRWISE_WEIGHT_RANGE",
    "REDUCTIONS",
    "SPLC_TAU_RANGE",
    "START_EPOCH_RANGE",
    "TAU_RANGE",
    "TEMPERATURE_RANGE",
    "AsymmetricLoss",
    "BCELoss",
    "CLMLLoss",
    "FocalLoss",
    "HillLoss",
    "LossParts",
    "MultiLabelLoss",
    "OfficialStyleLowRank",
    "SPLCLoss",
    "base_loss_class",
    "base_loss_defaults",
    "check_base_loss_args",
    "check_correction_switches",
    "correct_labels",
    "equivalent_lambda",
    "label_contrastive_loss",
    "low_rank_loss",
    "low_rank_loss_reference",
    "low_rank_terms",
    "make_base_loss",
    "mine_false_negatives",
    "nuclear_norm",
    "official_style_low_rank",
    "register_base_loss",
]
