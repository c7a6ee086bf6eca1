"""McNemar against scipy's exact binomial test, Holm by hand, the paired bootstrap against a plain loop."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from scipy.stats import binomtest

from analysis import AnalysisError
from analysis.metrics import from_counts
from analysis.stats import bootstrap_diffs, cluster_index, holm, mcnemar_exact, mcnemar_test, paired_deltas

R = 10_000


def test_mcnemar_reference() -> None:
    # Exact McNemar = two-sided binomial test of c successes in b + c trials at 1/2.
    p = mcnemar_exact(31, 17)
    assert p == pytest.approx(binomtest(17, 48, 0.5).pvalue, abs=1e-12)
    assert round(p, 4) == 0.0595  # 0.05946...: the exact binomial p (not 0.0599)
    assert mcnemar_exact(17, 31) == pytest.approx(p)


def test_mcnemar_no_discordant_pairs() -> None:
    assert mcnemar_exact(0, 0) == 1.0
    result = mcnemar_test([1, 0, 1], [1, 0, 0], [1, 0, 0])
    assert result == {"b": 0, "c": 0, "pValue": 1.0, "pAdjusted": None, "exact": True}


def test_mcnemar_counts() -> None:
    labels = [1, 1, 0, 0, 1]
    a = [1, 0, 0, 1, 1]  # right: 1, 3, 5
    b = [0, 1, 0, 0, 1]  # right: 2, 3, 4, 5
    result = mcnemar_test(labels, a, b)
    assert (result["b"], result["c"]) == (1, 2)  # b: sample 1 (a right, b wrong); c: samples 2 and 4
    assert result["pValue"] == pytest.approx(binomtest(1, 3, 0.5).pvalue)


def test_holm_by_hand() -> None:
    # Sorted 0.01, 0.03, 0.04 -> 3*0.01 = 0.03, 2*0.03 = 0.06, max(0.06, 1*0.04) = 0.06.
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, None, 0.9]) == [pytest.approx(1.0), None, pytest.approx(1.0)]
    assert holm([]) == []


def _paired(n: int, seed: int) -> tuple[list[int], list[int], list[int]]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    a = np.where(rng.random(n) < 0.6, labels, 1 - labels)
    b = np.where(rng.random(n) < 0.8, labels, 1 - labels)
    return labels.tolist(), a.tolist(), b.tolist()


def test_bootstrap_matches_a_plain_loop() -> None:
    # The vectorised weights are draws with replacement: rebuild each resample by hand from the same generator stream.
    labels, a, b = _paired(25, 1)
    y, pa, pb = np.array(labels), np.array(a), np.array(b)

    def cells(p: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        return np.stack([(y == 1) & (p == 1), (y == 0) & (p == 1), (y == 0) & (p == 0), (y == 1) & (p == 0)],
                        axis=1).astype(np.int64)

    diffs = bootstrap_diffs(cells(pa), cells(pb), np.arange(25), 2_000, seed=7)
    rng = np.random.default_rng(7)
    picks = rng.integers(0, 25, size=(2_000, 25))
    expected = []
    for row in picks:
        ca, cb = cells(pa)[row].sum(axis=0), cells(pb)[row].sum(axis=0)
        expected.append(float(from_counts(*cb)["f1"] - from_counts(*ca)["f1"]))
    assert diffs["f1"] == pytest.approx(np.array(expected))


def test_bootstrap_deterministic_and_contains_point() -> None:
    labels, a, b = _paired(200, 2)
    clusters = [f"c{i // 2}" for i in range(200)]
    first = paired_deltas(labels, a, b, clusters, R, 20260101, 0.95)
    again = paired_deltas(labels, a, b, clusters, R, 20260101, 0.95)
    other = paired_deltas(labels, a, b, clusters, R, 1, 0.95)
    assert first == again
    assert first["f1"]["ciSample"] != other["f1"]["ciSample"]
    for metric in ("accuracy", "f1", "macroF1", "mcc"):
        d = first[metric]
        assert d["diff"] == pytest.approx(d["b"] - d["a"])
        for kind in ("ciSample", "ciCluster"):
            lo, hi = d[kind]
            assert lo <= d["diff"] <= hi
        assert 0 <= d["pSample"] <= 1 and 0 <= d["pCluster"] <= 1
    assert first["accuracy"]["a"] == pytest.approx(np.mean(np.array(a) == np.array(labels)))


def test_cluster_interval_wider_for_clustered_data() -> None:
    # 40 commits of 10 samples; within a commit the two runs are right or wrong together, so the commits, not the
    # 400 samples, are the independent units: the cluster interval must be (much) wider.
    labels, a, b, clusters = [], [], [], []
    rng = np.random.default_rng(3)
    for k in range(40):
        a_right, b_right = rng.random() < 0.5, rng.random() < 0.7
        for i in range(10):
            y = i % 2
            labels.append(y)
            a.append(y if a_right else 1 - y)
            b.append(y if b_right else 1 - y)
            clusters.append(f"commit{k}")
    d = paired_deltas(labels, a, b, clusters, R, 5, 0.95)["accuracy"]

    def width(ci: list[float]) -> float:
        return ci[1] - ci[0]

    assert width(d["ciCluster"]) >= width(d["ciSample"])
    assert width(d["ciCluster"]) > 2 * width(d["ciSample"])


def test_bootstrap_p_values() -> None:
    labels = [1, 0] * 20
    wrong = [1 - y for y in labels]
    d = paired_deltas(labels, wrong, labels, [None] * 40, R, 0, 0.95)["accuracy"]
    assert d["diff"] == 1.0 and d["pSample"] == 0.0 and d["ciSample"] == [1.0, 1.0]  # every resample is +1
    same = paired_deltas(labels, labels, labels, [None] * 40, R, 0, 0.95)["f1"]
    assert same["diff"] == 0 and same["pSample"] == 1.0 and same["pCluster"] == 1.0  # ties count on both sides


def test_refuses_fewer_resamples() -> None:
    with pytest.raises(AnalysisError, match="at least 10000"):
        paired_deltas([1], [1], [1], [None], 9_999, 0, 0.95)


def test_no_common_samples() -> None:
    d = paired_deltas([], [], [], [], R, 0, 0.95)["f1"]
    assert d == {"a": None, "b": None, "diff": None, "ciSample": None, "ciCluster": None, "pSample": None,
                 "pCluster": None}


def test_cluster_index() -> None:
    assert cluster_index(["x", None, "y", "x", None]).tolist() == [0, 1, 2, 0, 3]
