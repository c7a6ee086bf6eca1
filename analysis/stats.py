"""Paired statistics of two runs on the same samples: exact McNemar, paired bootstrap (samples, commits), Holm."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from . import AnalysisError
from .metrics import METRICS, from_counts

MIN_RESAMPLES = 10_000  # the study's rule: fewer resamples give percentile limits too noisy to gate on
IntArray = npt.NDArray[np.int64]
# Cells of the per-sample confusion indicator: tp, fp, tn, fn.
_CELLS = 4
_CHUNK_CELLS = 4_000_000  # resample rows x clusters per chunk: bounds memory for large datasets


def mcnemar_exact(b: int, c: int, n11: int = 0, n22: int = 0) -> float:
    """Exact two-sided McNemar p from the discordant counts (b: A right B wrong, c: A wrong B right)."""
    if b + c == 0:
        return 1.0  # no discordant pair: no evidence of any difference
    from statsmodels.stats.contingency_tables import mcnemar  # slow to import: only when a test runs

    return float(mcnemar([[n11, b], [c, n22]], exact=True).pvalue)


def mcnemar_test(labels: Sequence[int], pred_a: Sequence[int], pred_b: Sequence[int]) -> dict[str, Any]:
    right_a = np.asarray(pred_a) == np.asarray(labels)
    right_b = np.asarray(pred_b) == np.asarray(labels)
    b = int(np.sum(right_a & ~right_b))
    c = int(np.sum(~right_a & right_b))
    n11 = int(np.sum(right_a & right_b))
    n22 = int(np.sum(~right_a & ~right_b))
    return {"b": b, "c": c, "pValue": mcnemar_exact(b, c, n11, n22), "pAdjusted": None, "exact": True}


def holm(pvalues: Sequence[float | None]) -> list[float | None]:
    """Holm-Bonferroni step-down adjusted p-values, in the input order; None entries stay None and do not count."""
    present = sorted((p, i) for i, p in enumerate(pvalues) if p is not None)
    m = len(present)
    adjusted: list[float | None] = [None] * len(pvalues)
    running = 0.0
    for rank, (p, i) in enumerate(present):
        running = max(running, min(1.0, (m - rank) * p))  # monotone: never below an earlier (smaller) p's
        adjusted[i] = running
    return adjusted


def check_bootstrap(resamples: Any, confidence: Any) -> None:
    if isinstance(resamples, bool) or not isinstance(resamples, int) or resamples < MIN_RESAMPLES:
        raise AnalysisError(f"bootstrap resamples must be an integer of at least {MIN_RESAMPLES} (the study's rule), "
                            f"got {resamples!r}")
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) or not 0.5 < confidence < 1:
        raise AnalysisError(f"bootstrap confidence must be between 0.5 and 1, got {confidence!r}")


def _cells(labels: IntArray, preds: IntArray) -> IntArray:
    """Per-sample one-hot confusion cell (n x 4: tp, fp, tn, fn)."""
    out = np.zeros((labels.size, _CELLS), dtype=np.int64)
    out[:, 0] = (labels == 1) & (preds == 1)
    out[:, 1] = (labels == 0) & (preds == 1)
    out[:, 2] = (labels == 0) & (preds == 0)
    out[:, 3] = (labels == 1) & (preds == 0)
    return out


def _resampled_weights(rng: np.random.Generator, clusters: int, rows: int) -> IntArray:
    """rows x clusters: how often each cluster is drawn in each resample (draws with replacement, clusters per row)."""
    picks = rng.integers(0, clusters, size=(rows, clusters))
    flat = picks + np.arange(rows, dtype=np.int64)[:, None] * clusters
    return np.bincount(flat.ravel(), minlength=rows * clusters).reshape(rows, clusters)


def bootstrap_diffs(cells_a: IntArray, cells_b: IntArray, groups: IntArray, resamples: int,
                    seed: int) -> dict[str, npt.NDArray[np.float64]]:
    """Metric differences (b - a) over `resamples` resamples of whole groups, shared by both runs.

    groups[i] is sample i's cluster (0..C-1); one group per sample gives the plain sample bootstrap. Each resample's
    confusion counts are a weighted sum of per-cluster counts, so all resamples are scored at once.
    """
    n_groups = int(groups.max()) + 1
    sums_a = np.zeros((n_groups, _CELLS), dtype=np.int64)
    sums_b = np.zeros((n_groups, _CELLS), dtype=np.int64)
    np.add.at(sums_a, groups, cells_a)
    np.add.at(sums_b, groups, cells_b)
    rng = np.random.default_rng(seed)
    step = max(1, _CHUNK_CELLS // n_groups)
    diffs: dict[str, list[npt.NDArray[np.float64]]] = {m: [] for m in METRICS}
    for start in range(0, resamples, step):
        weights = _resampled_weights(rng, n_groups, min(step, resamples - start))
        ca, cb = weights @ sums_a, weights @ sums_b
        ma, mb = from_counts(*ca.T), from_counts(*cb.T)
        for m in METRICS:
            diffs[m].append(mb[m] - ma[m])
    return {m: np.concatenate(v) for m, v in diffs.items()}


def interval(diffs: npt.NDArray[np.float64], confidence: float) -> list[float]:
    tail = (1 - confidence) / 2
    lo, hi = np.quantile(diffs, [tail, 1 - tail])
    return [float(lo), float(hi)]


def bootstrap_p(diffs: npt.NDArray[np.float64]) -> float:
    """Two-sided: twice the smaller share of resampled differences on either side of 0 (ties count on both sides)."""
    below, above = float(np.mean(diffs <= 0)), float(np.mean(diffs >= 0))
    return min(1.0, 2 * min(below, above))


def paired_deltas(labels: Sequence[int], pred_a: Sequence[int], pred_b: Sequence[int],
                  clusters: Sequence[Any | None], resamples: int, seed: int,
                  confidence: float) -> dict[str, dict[str, Any]]:
    """Delta per metric: {a, b, diff, ciSample, ciCluster, pSample, pCluster}, on the given common samples.

    clusters[i] is sample i's commit (None: a cluster of its own). Each resampling kind draws from a fresh
    default_rng(seed), so a comparison's intervals do not depend on which comparisons ran before it.
    """
    check_bootstrap(resamples, confidence)
    y = np.asarray(labels, dtype=np.int64)
    a = np.asarray(pred_a, dtype=np.int64)
    b = np.asarray(pred_b, dtype=np.int64)
    n = y.size
    cells_a, cells_b = _cells(y, a), _cells(y, b)
    point_a = from_counts(*cells_a.sum(axis=0))
    point_b = from_counts(*cells_b.sum(axis=0))
    if n == 0:
        return {m: {"a": None, "b": None, "diff": None, "ciSample": None, "ciCluster": None, "pSample": None,
                    "pCluster": None} for m in METRICS}
    sample_groups = np.arange(n, dtype=np.int64)
    cluster_groups = cluster_index(clusters)
    by_sample = bootstrap_diffs(cells_a, cells_b, sample_groups, resamples, seed)
    by_cluster = bootstrap_diffs(cells_a, cells_b, cluster_groups, resamples, seed)
    out: dict[str, dict[str, Any]] = {}
    for m in METRICS:
        va, vb = float(point_a[m]), float(point_b[m])
        out[m] = {"a": va, "b": vb, "diff": vb - va,
                  "ciSample": interval(by_sample[m], confidence), "ciCluster": interval(by_cluster[m], confidence),
                  "pSample": bootstrap_p(by_sample[m]), "pCluster": bootstrap_p(by_cluster[m])}
    return out


def cluster_index(clusters: Sequence[Any | None]) -> IntArray:
    """Cluster number per sample in order of first appearance; a sample without a commit is a cluster of its own."""
    numbers: dict[Any, int] = {}
    out = np.empty(len(clusters), dtype=np.int64)
    for i, commit in enumerate(clusters):
        key = ("commit", commit) if commit is not None else ("sample", i)
        out[i] = numbers.setdefault(key, len(numbers))
    return out
