"""Hyper-parameters are validated by the loss objects themselves (not only by the training config).

The class of defect: NaN / inf weights, out-of-range values and the string
"False" for a switch were accepted by the library API. Each test tries every numeric parameter
of every loss with several bad values, and every switch with several non-bools; the valid
boundary values must still be accepted. The shared label-code checker is tested at the end.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from clml_lib.checks import Range, check_label_codes
from clml_lib.losses import (
    CLIP_RANGE,
    DELTA_RANGE,
    EPS_RANGE,
    GAMMA_RANGE,
    HILL_LAMBDA_RANGE,
    LAMBDA_RANGE,
    MARGIN_RANGE,
    PAIRWISE_WEIGHT_RANGE,
    SPLC_TAU_RANGE,
    START_EPOCH_RANGE,
    TAU_RANGE,
    TEMPERATURE_RANGE,
    AsymmetricLoss,
    BCELoss,
    CLMLLoss,
    FocalLoss,
    HillLoss,
    SPLCLoss,
    correct_labels,
    label_contrastive_loss,
    mine_false_negatives,
)

NON_FINITE = [math.nan, math.inf, -math.inf]
NOT_A_NUMBER = ["0.5", None, True, [0.5], torch.tensor(0.5)]
NOT_A_BOOL = ["False", "True", 0, 1, 1.0, None, np.bool_(True)]

# (constructor, parameter, its range, values outside the range)
NUMERIC = [
    (CLMLLoss, "lambda_", LAMBDA_RANGE, [-1e-9, -1.0]),
    (CLMLLoss, "tau", TAU_RANGE, [-0.01, 1.01, 2.0]),
    (CLMLLoss, "delta", DELTA_RANGE, [-0.5]),
    (CLMLLoss, "pairwise_weight", PAIRWISE_WEIGHT_RANGE, [-0.1]),
    (CLMLLoss, "temperature", TEMPERATURE_RANGE, [0.0, -0.1]),
    (BCELoss, "eps", EPS_RANGE, [0.0, 1.0, -1e-8]),
    (FocalLoss, "gamma", GAMMA_RANGE, [-0.5]),
    (AsymmetricLoss, "gamma_pos", GAMMA_RANGE, [-1.0]),
    (AsymmetricLoss, "gamma_neg", GAMMA_RANGE, [-1.0]),
    (AsymmetricLoss, "clip", CLIP_RANGE, [-0.05, 1.0, 1.5]),
    (AsymmetricLoss, "eps", EPS_RANGE, [0.0, 2.0]),
    (HillLoss, "lamb", HILL_LAMBDA_RANGE, [0.5, -1.5]),
    (HillLoss, "margin", MARGIN_RANGE, [-1.0]),
    (HillLoss, "gamma", GAMMA_RANGE, [-2.0]),
    (SPLCLoss, "tau", SPLC_TAU_RANGE, [-0.1, 1.7]),
    (SPLCLoss, "margin", MARGIN_RANGE, [-1.0]),
    (SPLCLoss, "gamma", GAMMA_RANGE, [-2.0]),
]
INTEGER = [
    (CLMLLoss, "start_epoch", START_EPOCH_RANGE, [-1]),
    (SPLCLoss, "start_epoch", START_EPOCH_RANGE, [-1]),
]
SWITCHES = ["use_clml", "use_correction", "correct_base_targets"]


def _ids(cases):
    return [f"{cls.__name__}.{param}" for cls, param, _, _ in cases]


@pytest.mark.parametrize("cls, param, rng, outside", NUMERIC, ids=_ids(NUMERIC))
def test_numeric_parameter_refuses_bad_values(cls, param, rng, outside):
    for bad in outside + NON_FINITE + NOT_A_NUMBER:
        with pytest.raises(ValueError, match=param):
            cls(**{param: bad})
    # the range's own closed bounds are accepted, a value inside too
    for ok in (rng.lo, rng.hi):
        if (
            ok is not None
            and not (ok == rng.lo and rng.lo_open)
            and not (ok == rng.hi and rng.hi_open)
        ):
            cls(**{param: ok})
    inside = 0.5 if rng.hi is not None else (rng.lo or 0.0) + 0.5
    assert getattr(cls(**{param: inside}), param) == inside
    assert getattr(cls(**{param: np.float32(inside)}), param) == inside  # NumPy scalars accepted


@pytest.mark.parametrize("cls, param, rng, outside", INTEGER, ids=_ids(INTEGER))
def test_integer_parameter_refuses_floats_and_bools(cls, param, rng, outside):
    for bad in outside + [1.0, 1.5, True, "1", math.nan, None]:
        with pytest.raises(ValueError, match=param):
            cls(**{param: bad})
    assert getattr(cls(**{param: np.int64(3)}), param) == 3


@pytest.mark.parametrize("switch", SWITCHES)
def test_switch_refuses_non_bools(switch):
    for bad in NOT_A_BOOL:
        with pytest.raises(ValueError, match=rf"{switch} must be True or False, got"):
            CLMLLoss(**{switch: bad})


def test_string_false_is_not_read_as_true():
    # the type=bool trap: bool("False") is True; the loss must refuse it, never switch CLML on
    with pytest.raises(ValueError, match=r"use_clml must be True or False, got 'False' \(str\)"):
        CLMLLoss(use_clml="False")


def test_nan_lambda_cannot_switch_the_term_off():
    # nan > 0 is False: before validation, lambda_=nan silently dropped the CLML term
    with pytest.raises(ValueError, match=r"lambda_ must be finite, got nan"):
        CLMLLoss(lambda_=float("nan"))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(reduction="avg"), r"reduction must be one of \('sum', 'mean'\), got 'avg'"),
        (dict(reduction="Sum"), r"did you mean 'sum'"),
        (dict(lambda_placement="2024"), r"lambda_placement must be one of"),
        (dict(lambda_placement=2023), r"lambda_placement must be one of"),
        (dict(correct_base_targets=True, use_correction=False), r"needs use_correction=True"),
    ],
)
def test_choices_and_combinations(kwargs, message):
    with pytest.raises(ValueError, match=message):
        CLMLLoss(**kwargs)


@pytest.mark.parametrize("cls", [BCELoss, FocalLoss, AsymmetricLoss, HillLoss, SPLCLoss])
def test_base_loss_policies(cls):
    with pytest.raises(ValueError, match=r"unknown must be one of \('negative', 'ignore'\)"):
        cls(unknown="skip")
    with pytest.raises(ValueError, match=r"reduction must be one of"):
        cls(reduction=None)


def test_functions_validate_their_parameters():
    s, y = torch.randn(4, 3), (torch.rand(4, 3) > 0.5).float()
    z = torch.randn(4, 5)
    for tau in (math.nan, -0.1, 1.5, "0.5"):
        with pytest.raises(ValueError, match="tau"):
            correct_labels(s, y, tau, epoch=1)
    for epoch in (-1, 1.0, True):
        with pytest.raises(ValueError, match="epoch"):
            mine_false_negatives(s, y, 0.5, epoch)
    with pytest.raises(ValueError, match="start_epoch"):
        mine_false_negatives(s, y, 0.5, 1, start_epoch=-2)
    with pytest.raises(ValueError, match="encoding must be one of"):
        mine_false_negatives(s, y, 0.5, 1, encoding="ternery")
    for t in (math.nan, math.inf, 0.0, -1.0, "0.1"):
        with pytest.raises(ValueError, match="temperature"):
            label_contrastive_loss(z, y, t)


def test_ranges_are_the_values_the_objects_use():
    # one fact each: the constants are what the constructors check (not a copy)
    assert TAU_RANGE == Range(0.0, 1.0) and SPLC_TAU_RANGE is TAU_RANGE
    assert LAMBDA_RANGE.check("lambda_", 0.0) == 0.0 and TEMPERATURE_RANGE.check("t", 1e-6) == 1e-6
    for bad_range, value in ((LAMBDA_RANGE, -0.1), (LAMBDA_RANGE, math.nan),
                             (TEMPERATURE_RANGE, 0.0)):
        with pytest.raises(ValueError, match="must be"):
            bad_range.check("x", value)
    assert str(CLIP_RANGE) == "[0, 1)" and str(START_EPOCH_RANGE) == "integers in [0, inf)"
    loss = CLMLLoss("Hill", lambda_=0.0, tau=1.0, start_epoch=0, delta=0.0)
    assert (loss.lambda_, loss.tau, loss.start_epoch, loss.delta) == (0.0, 1.0, 0, 0.0)


# --------------------------------------------------------------------------- label codes
@pytest.mark.parametrize("kind", ["torch", "numpy", "list"])
def test_check_label_codes_accepts_valid_codes(kind):
    good = [[0, 1, 1], [1, 0, 0]]
    ternary = [[0, -1, 1], [1, 0, -1]]
    conv = {"torch": torch.tensor, "numpy": np.array, "list": lambda x: x}[kind]
    check_label_codes(conv(good))
    check_label_codes(conv(ternary), allow_unknown=True)
    check_label_codes(torch.tensor(good).bool())
    check_label_codes(np.array(good, dtype=np.float64))


@pytest.mark.parametrize("conv", [torch.tensor, np.array], ids=["torch", "numpy"])
@pytest.mark.parametrize(
    "values, allow_unknown, found",
    [
        (
            [[0.0, 1.0], [-1.0, 0.0]],
            False,
            r"found -1 in 1 of 4 entries \(first at row 1 \('b'\), class 0\)",
        ),
        (
            [[0.0, 2.0], [0.5, 0.0]],
            True,
            r"found 0.5, 2 in 2 of 4 entries \(first at row 0 \('a'\), class 1\)",
        ),
        ([[0.0, math.nan], [1.0, 0.0]], False, r"found nan in 1 of 4 entries"),
        ([[0.0, -2.0], [1.0, 0.0]], True, r"\{-1, 0, 1\} \(-1 = unknown\), found -2"),
    ],
)
def test_check_label_codes_names_values_and_place(conv, values, allow_unknown, found):
    with pytest.raises(
        ValueError, match=r"^f\.txt: targets must hold only .*" + found + ".* use 0/1$"
    ):
        check_label_codes(
            conv(values),
            "targets",
            allow_unknown=allow_unknown,
            source="f.txt",
            row_names=["a", "b"],
            hint=" use 0/1",
        )


def test_check_label_codes_other_inputs():
    with pytest.raises(
        ValueError,
        match=r"must hold only \{0, 1\}, found 3 in 1 of 3 entries \(first at index \(2,\)\)",
    ):
        check_label_codes(torch.tensor([0, 1, 3]))
    with pytest.raises(ValueError, match=r"labels must be numeric label codes, got dtype <U1"):
        check_label_codes(np.array(["0", "1"]))
    many = torch.arange(10.0).reshape(2, 5) + 2
    with pytest.raises(
        ValueError, match=r"found 2, 3, 4, 5, 6, \.\.\. \(10 distinct\) in 10 of 10"
    ):
        check_label_codes(many)
