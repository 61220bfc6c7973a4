"""Answer equivalence: math-verify clusters and the regex normalizer on tables of spellings."""

from __future__ import annotations

import json

import pytest

from autotts_gym.collect.normalize import (
    MathVerifyNormalizer,
    get_vocab_normalizer,
    normalize_math,
)
from autotts_gym.importer import import_sources
from autotts_gym.store import ReplayStore

SAME = [  # (a, b): one value, two spellings
    ("-\\frac{1}{2}", "-1/2"), ("\\frac{1}{2}", "0.5"), ("\\dfrac12", "1/2"),
    ("{1\\over 2}", "1/2"), ("1,000", "1000"), ("10^\\circ", "10"),
    ("\\frac{\\sqrt2}{2}", "\\sqrt{2}/2"), ("2\\pi", "\\pi \\cdot 2"), ("x=3", "3"),
    ("3 \\text{ cm}", "3"), ("\\frac{9}{4}", "2.25"), ("\\sqrt{8}", "2\\sqrt{2}"),
    ("\\frac{-1}{2}", "-0.5"), ("\\left(\\frac{1}{2}\\right)", "\\frac12"),
    ("\\text{5}", "5"), ("5.0", "5"), ("$5$", "5"), ("\\{1,2\\}", "\\{2,1\\}"),
]
DIFFERENT = [  # must stay apart
    ("1/3", "0.333"), ("-1/2", "1/2"), ("12", "21"), ("\\sqrt{2}", "2"),
    ("ERR", "E R R"), ("abc", "cba"), ("x^2", "x^2 + 0"), ("2", "ERR"),
]


@pytest.fixture(scope="module")
def mv():
    return MathVerifyNormalizer()


@pytest.mark.parametrize(("a", "b"), SAME)
def test_math_verify_merges_spellings(mv, a, b):
    assert mv.merge(a, [b, a])[b] == a  # the gold's spelling names the cluster


@pytest.mark.parametrize(("a", "b"), DIFFERENT)
def test_math_verify_keeps_values_apart(mv, a, b):
    m = mv.merge(a, [b])
    assert m[a] == a and m[b] == b


def test_math_verify_beats_the_regex_on_the_table(mv):
    merged_mv = sum(mv.merge(a, [b])[b] == a for a, b in SAME)
    merged_re = sum(normalize_math(a) == normalize_math(b) for a, b in SAME)
    assert merged_mv == len(SAME) > merged_re


def test_regex_normalizer_keeps_signs():
    assert normalize_math("-\\frac{1}{2}") == normalize_math("-1/2") == "-1/2"
    assert normalize_math("\\frac{-1}{2}") == "-1/2"
    assert normalize_math("-\\frac{1}{2}") != normalize_math("\\frac{1}{2}")


def test_cluster_representative_without_gold(mv):
    m = mv.merge("7", ["0.5", "\\frac{1}{2}", "1/2", "ERR", "7.0"])
    assert m["\\frac{1}{2}"] == m["1/2"] == "0.5"  # first spelling in stored order
    assert m["7.0"] == "7" and m["ERR"] == "ERR"


def test_import_with_math_verify_records_and_merges(tmp_path):
    src = tmp_path / "m" / "b.json"
    src.parent.mkdir()
    problem = {"question": "q", "gold_answer": "-\\frac{1}{2}", "probe_freq": 500,
               "each_branch": [[["-1/2", "ERR"], 1200, "-0.5"], [["0.5"], 900, "-1/2"]]}
    problem["final_answers_trace"] = [b[2] for b in problem["each_branch"]]
    src.write_text(json.dumps([problem]))
    import_sources(src, tmp_path / "s", normalizer=get_vocab_normalizer("math-verify"),
                   normalizer_name="math-verify")
    rs = ReplayStore(tmp_path / "s").load("m", "b")
    p = rs.problems[0]
    assert rs.normalizer == "math-verify"
    assert p.vocab == ("-\\frac{1}{2}", "ERR", "0.5") and p.gold_id == 0
    assert list(p.final) == [0, 0] and list(p.branch_probes(1)) == [2]
