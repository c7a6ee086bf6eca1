"""The gate rule's cases, Holm, the interval requirement, and the texts a researcher reads."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from analysis.decision import decide
from analysis.settings import DEFAULT_SETTINGS

A, B = "Qwen/Model-A-Instruct", "Qwen/Model-B-Thinking"


def comparison(cid: str, b: int, c: int, p: float, diff: float, ci: list[float]) -> dict[str, Any]:
    """A treatment-vs-baseline comparison as compare_runs builds it (only the fields the rule reads)."""
    delta = {"a": 0.5, "b": 0.5 + diff, "diff": diff, "ciSample": ci, "ciCluster": ci, "pSample": 0.01,
             "pCluster": 0.01}
    return {"id": cid, "nCommon": 100, "mcnemar": {"b": b, "c": c, "pValue": p, "pAdjusted": None, "exact": True},
            "accuracy": delta, "f1": delta, "macroF1": delta, "mcc": delta, "verdict": None}


UP: dict[str, Any] = dict(b=5, c=40, p=1e-6, diff=0.2, ci=[0.1, 0.3])
DOWN: dict[str, Any] = dict(b=40, c=5, p=1e-6, diff=-0.2, ci=[-0.3, -0.1])
FLAT: dict[str, Any] = dict(b=20, c=22, p=0.88, diff=0.01, ci=[-0.08, 0.1])


def settings(**decision: Any) -> dict[str, Any]:
    s = copy.deepcopy(DEFAULT_SETTINGS)
    s["decision"].update(decision)
    return s


def run(a: dict[str, Any], b: dict[str, Any], s: dict[str, Any] | None = None) -> dict[str, Any]:
    contrasts = {A: comparison("ca", **a), B: comparison("cb", **b)}
    out = decide([A, B], contrasts, {}, s or settings())
    out["_contrasts"] = contrasts
    return out


def verdicts(d: dict[str, Any]) -> list[str | None]:
    return [m["verdict"] for m in d["perModel"]]


def test_both_improve() -> None:
    d = run(UP, UP)
    assert verdicts(d) == ["improves", "improves"]
    assert (d["recommendation"]["action"], d["recommendation"]["basis"]) == ("approve", "confirms-improvement")
    assert d["_contrasts"][A]["verdict"] == "improves"
    assert d["_contrasts"][A]["mcnemar"]["pAdjusted"] == pytest.approx(2e-6)  # Holm over 2 contrasts


def test_both_degrade() -> None:
    d = run(DOWN, DOWN)
    assert verdicts(d) == ["degrades", "degrades"]
    assert (d["recommendation"]["action"], d["recommendation"]["basis"]) == ("skip", "trend-established")


def test_inconclusive() -> None:
    d = run(FLAT, FLAT)
    assert verdicts(d) == ["inconclusive", "inconclusive"]
    assert (d["recommendation"]["action"], d["recommendation"]["basis"]) == ("approve", "adds-data-point")
    assert "not below 0.05" in d["perModel"][0]["why"] and "includes 0" in d["perModel"][0]["why"]


def test_one_degrades_one_inconclusive() -> None:
    d = run(DOWN, FLAT)
    assert verdicts(d) == ["degrades", "inconclusive"]
    rec = d["recommendation"]
    assert (rec["action"], rec["basis"]) == ("approve", "adds-data-point")
    assert "disagree" in rec["text"]
    assert f"{A} clearly degrades" in rec["text"] and f"{B} is inconclusive" in rec["text"]
    assert "clearly degrades" in d["perModel"][0]["why"] and "inconclusive" in d["perModel"][1]["why"]


def test_holm_can_remove_significance() -> None:
    near: dict[str, Any] = dict(b=5, c=15, diff=0.1, ci=[0.02, 0.2])
    d = run({**near, "p": 0.03}, {**near, "p": 0.04})
    # Holm: 2 x 0.03 = 0.06, max(0.06, 0.04) = 0.06: neither below 0.05.
    assert verdicts(d) == ["inconclusive", "inconclusive"]
    assert d["_contrasts"][B]["mcnemar"]["pAdjusted"] == pytest.approx(0.06)
    d = run({**near, "p": 0.03}, {**near, "p": 0.04}, settings(multipleComparisons="none"))
    assert verdicts(d) == ["improves", "improves"]
    assert d["_contrasts"][A]["mcnemar"]["pAdjusted"] is None
    assert "no adjustment" in d["definition"]


def test_interval_and_direction_requirements() -> None:
    wide: dict[str, Any] = dict(b=5, c=40, p=1e-6, diff=0.2, ci=[-0.01, 0.3])
    assert verdicts(run(wide, wide)) == ["inconclusive", "inconclusive"]
    assert verdicts(run(wide, wide, settings(requireCiExcludesZero=False))) == ["improves", "improves"]
    crossed: dict[str, Any] = dict(b=5, c=40, p=1e-6, diff=-0.05, ci=[-0.1, -0.01])  # McNemar up, F1 down
    d = run(crossed, crossed)
    assert verdicts(d) == ["inconclusive", "inconclusive"]
    assert "different ways" in d["perModel"][0]["why"]


def test_no_evidence() -> None:
    d = decide([A], {A: None}, {A: "no few-shot run of A in phase2a: no comparison"}, settings())
    assert d["perModel"] == [{"model": A, "verdict": None, "comparison": None,
                              "why": "no few-shot run of A in phase2a: no comparison"}]
    assert (d["recommendation"]["action"], d["recommendation"]["basis"]) == ("none", "no-evidence")
    assert decide([], {}, {}, settings())["recommendation"]["action"] == "none"


def test_a_model_without_comparison_is_not_every_model() -> None:
    d = decide([A, B], {A: comparison("ca", **UP), B: None}, {B: "no zero-shot run"}, settings())
    rec = d["recommendation"]
    assert (rec["action"], rec["basis"]) == ("approve", "adds-data-point")
    assert "no zero-shot run" in rec["text"]


def test_texts_state_the_rule() -> None:
    d = run(UP, FLAT)
    text = d["definition"]
    for needed in ("alpha = 0.05", "Holm-Bonferroni", "95%", "whole commits", "10000 resamples", "F1", "c > b",
                   "McNemar"):
        assert needed in text
    assert "few-shot" in d["rule"] and "zero-shot" in d["rule"]
    sample = run(UP, FLAT, settings(ciResampling="sample", metric="mcc"))["definition"]
    assert "individual samples" in sample and "MCC" in sample
