r"""The CLML loss family (paper.md section 2).

* :func:`correct_labels`, :func:`mine_false_negatives`: false-negative mining (2.1).
* :func:`label_contrastive_loss`: per-label positives and negatives of an anchor (2.2).
* :func:`nuclear_norm`, :func:`low_rank_loss`, :func:`low_rank_loss_reference`: the low-rank
  local and global terms (2.3, 2.5).
* :class:`BCELoss`, :class:`FocalLoss`, :class:`AsymmetricLoss`, :class:`HillLoss`,
  :class:`SPLCLoss`, :func:`make_base_loss`: base losses (2.4).
* :class:`CLMLLoss`: base + CLML, with the ablation switches.
* :func:`official_style_low_rank`: the official gradient path, for the audit only (5.5).
"""

from .base import (
    AsymmetricLoss,
    BCELoss,
    FocalLoss,
    HillLoss,
    MultiLabelLoss,
    SPLCLoss,
    equivalent_lambda,
    make_base_loss,
)
from .clml import ABLATIONS, CLMLLoss, LossParts
from .contrastive import label_contrastive_loss
from .correction import correct_labels, mine_false_negatives
from .nuclear import low_rank_loss, low_rank_loss_reference, low_rank_terms, nuclear_norm
from .official import OfficialStyleLowRank, official_style_low_rank

__all__ = [
    "ABLATIONS",
    "AsymmetricLoss",
    "BCELoss",
    "CLMLLoss",
    "FocalLoss",
    "HillLoss",
    "LossParts",
    "MultiLabelLoss",
    "OfficialStyleLowRank",
    "SPLCLoss",
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
]
