"""clml_lib: CLML, the label-structure-preserving contrastive loss for multi-label
learning with missing labels (Ma, Li, Mao, Chen, arXiv 2209.01314)."""

__version__ = "0.1.0"
