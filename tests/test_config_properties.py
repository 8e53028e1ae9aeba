"""Property tests (Hypothesis): any configuration mapping or YAML text is either read exactly or
refused with a ValueError that names the field (or the file) and the problem."""

from __future__ import annotations

import dataclasses
import math
import re

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clml_lib.train.config import TrainConfig, load_config, read_layer

FIELDS = TrainConfig.field_names()
TYPES = {f.name: f.type for f in dataclasses.fields(TrainConfig)}
PROBLEM = re.compile(r"must be|unknown TrainConfig key|needs|must not be empty")
SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow,
                                           HealthCheck.function_scoped_fixture])

_numbers_as_text = st.one_of(
    st.integers(-5, 100).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["1e-4", "1E3", ".5", "-0.25", "true", "False", "TRUE", "yes", "", " 3 ",
                     "0x10", "1_000", "nan", "inf", "cuda:1", "coco", "BCE", "40left", "sum"]),
)
_values = st.one_of(
    st.booleans(), st.none(), st.integers(-3, 200),
    st.floats(allow_nan=True, allow_infinity=True), st.floats(0.0, 1.0),
    _numbers_as_text, st.text(max_size=8), st.lists(st.integers(), max_size=2),
)
_keys = st.one_of(st.sampled_from(FIELDS), st.sampled_from(["lamda_", "correction", "Tau", "x"]),
                  st.text(min_size=1, max_size=6))


def _expected(name: str, value):
    """What a field must hold after reading ``value``: the value itself, or its text parsed."""
    typ = TYPES[name]
    if typ == "dict" and isinstance(value, str):  # text of a mapping: YAML, empty is {}
        return yaml.safe_load(value) if value.strip() else {}
    if typ == "str" or not isinstance(value, str):
        return float(value) if typ == "float" else value
    text = value.strip()
    if typ == "bool":
        return {"true": True, "false": False}[text.lower()]
    return int(text) if typ == "int" else float(text)


def _check(mapping: dict, read, where: str = "") -> None:
    try:
        cfg = read(mapping)
    except ValueError as err:
        msg = str(err)
        assert PROBLEM.search(msg), msg
        assert any(repr(k) in msg or f"{k} " in msg or f"{k}=" in msg or f"{k}:" in msg
                   for k in mapping), f"no key of {mapping} named in: {msg}"
        if where:
            assert where in msg, f"{where} not named in: {msg}"
        return
    assert set(mapping) <= set(FIELDS)
    for k, v in mapping.items():
        got, want = getattr(cfg, k), _expected(k, v)
        assert type(got).__name__ == TYPES[k], (k, v, got)
        assert got == want or (isinstance(want, float) and math.isclose(got, want)), (k, v, got)


@SETTINGS
@given(st.dictionaries(_keys, _values, max_size=5))
def test_any_mapping_is_read_exactly_or_refused_by_name(mapping):
    _check(mapping, TrainConfig.from_dict)


@SETTINGS
@given(st.dictionaries(st.sampled_from(FIELDS), _values, max_size=4))
def test_any_mapping_of_known_fields_with_a_source_names_the_source(mapping):
    _check(mapping, lambda d: TrainConfig.from_dict(d, source="checkpoint c.pt"),
           where="(in checkpoint c.pt)")


@SETTINGS
@given(st.dictionaries(_keys, _values, max_size=5))
def test_any_yaml_file_is_read_exactly_or_refused_naming_the_file(tmp_path, mapping):
    path = tmp_path / "layer.yaml"
    path.write_text(yaml.safe_dump(mapping), encoding="utf-8")
    back = yaml.safe_load(path.read_text(encoding="utf-8")) or {}  # what the file holds
    _check(back, lambda _: load_config(path), where=str(path))


@SETTINGS
@given(st.text(max_size=60))
def test_any_text_is_a_mapping_read_exactly_or_refused_naming_the_file(tmp_path, text):
    path = tmp_path / "any.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        parsed = yaml.safe_load(text)
    except yaml.YAMLError:
        parsed = "not yaml"
    try:
        fields = read_layer(path)
    except ValueError as err:
        assert str(path) in str(err), str(err)
        return
    assert parsed is None or isinstance(parsed, dict)
    assert set(fields) == set(parsed or {})
