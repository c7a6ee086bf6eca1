"""Per-run metrics: classification (as the harness scores), vulnerable/benign pairs of a commit, energy."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from .runs import Json, Run, SampleId

SCORING = ("positive class = vulnerable; an unparseable prediction, a truncated output without an answer and a "
           "request error count as wrong (fn for a vulnerable sample, fp for a benign one); precision, recall and F1 "
           "are 0 when their denominator is 0; MCC is 0 when undefined; the first record of a duplicated id counts")

METRICS = ("accuracy", "f1", "macroF1", "mcc")
FloatArray = npt.NDArray[np.float64]


def effective_prediction(record: Json) -> int:
    """The scored prediction: a missing or unparseable answer is the wrong one, as in pod/harness/metrics.py."""
    prediction = record.get("prediction")
    if isinstance(prediction, bool) or prediction not in (0, 1):
        return 1 - int(record["label"])
    return int(prediction)


def _div(num: FloatArray, den: FloatArray) -> FloatArray:
    """num / den with 0 where den is 0 (the contract's convention for precision, recall, F1 and MCC)."""
    out = np.zeros(np.broadcast(num, den).shape, dtype=np.float64)
    np.divide(num, den, out=out, where=den != 0)
    return out


def from_counts(tp: Any, fp: Any, tn: Any, fn: Any) -> dict[str, FloatArray]:
    """Every metric from confusion counts; vectorised, so one call scores all bootstrap resamples at once."""
    tp, fp, tn, fn = (np.asarray(x, dtype=np.float64) for x in (tp, fp, tn, fn))
    n = tp + fp + tn + fn
    f1_pos = _div(2 * tp, 2 * tp + fp + fn)  # = 2PR/(P+R), and 0 when P or R is 0 or undefined
    f1_neg = _div(2 * tn, 2 * tn + fn + fp)
    mcc_den = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    return {
        "accuracy": _div(tp + tn, n),
        "precision": _div(tp, tp + fp),
        "recall": _div(tp, tp + fn),
        "recallBenign": _div(tn, tn + fp),
        "f1": f1_pos,
        "macroF1": (f1_pos + f1_neg) / 2,
        "mcc": _div(tp * tn - fp * fn, mcc_den),
    }


def confusion(labels: list[int], predictions: list[int]) -> dict[str, int]:
    tp = sum(1 for y, p in zip(labels, predictions, strict=True) if y == 1 and p == 1)
    fn = sum(1 for y, p in zip(labels, predictions, strict=True) if y == 1 and p == 0)
    fp = sum(1 for y, p in zip(labels, predictions, strict=True) if y == 0 and p == 1)
    tn = sum(1 for y, p in zip(labels, predictions, strict=True) if y == 0 and p == 0)
    return {"tp": tp, "fp": fp, "tn": tn, "fn": fn}


def classification(records: list[Json]) -> Json:
    """RunSummary.metrics for unique records."""
    labels = [int(r["label"]) for r in records]
    c = confusion(labels, [effective_prediction(r) for r in records])
    m = {k: float(v) for k, v in from_counts(c["tp"], c["fp"], c["tn"], c["fn"]).items()}
    return {
        "accuracy": m["accuracy"], "precision": m["precision"], "recall": m["recall"], "f1": m["f1"],
        "macroF1": m["macroF1"], "mcc": m["mcc"], "recallVulnerable": m["recall"], "recallBenign": m["recallBenign"],
        "confusion": c,
        "unparseable": sum(1 for r in records if r.get("prediction") not in (0, 1) or isinstance(r.get("prediction"),
                                                                                                    bool)),
        "truncated": sum(1 for r in records if r.get("finish_reason") == "length"),
        "requestErrors": sum(1 for r in records if r.get("error")),
        "scoring": SCORING,
    }


def commit_pairs(samples: list[Json]) -> list[tuple[str, SampleId, SampleId]]:
    """(commit, vulnerable id, benign id): within a commit with both classes, the i-th vulnerable sample with the i-th
    benign one in dataset order, min(#vulnerable, #benign) pairs."""
    by_commit: dict[str, tuple[list[SampleId], list[SampleId]]] = {}
    for sample in samples:
        if sample.get("commit"):
            vulnerable, benign = by_commit.setdefault(sample["commit"], ([], []))
            (vulnerable if sample["label"] == 1 else benign).append(sample["id"])
    return [(commit, v, b) for commit, (vs, bs) in by_commit.items() for v, b in zip(vs, bs, strict=False)]


def pair_metrics(records: list[Json], samples: list[Json] | None) -> Json | None:
    """Pair-wise view: does the model tell a vulnerable function from its fixed (or sibling) benign one?

    A pair counts only when the run predicted both samples; null without commit information (no samples.json).
    """
    if samples is None:
        return None
    by_id = {r["id"]: r for r in records}
    counts = {"correct": 0, "bothVulnerable": 0, "bothBenign": 0, "reversed": 0}
    commits: set[str] = set()
    for commit, vid, bid in commit_pairs(samples):
        if vid not in by_id or bid not in by_id:
            continue
        commits.add(commit)
        pv, pb = effective_prediction(by_id[vid]), effective_prediction(by_id[bid])
        kind = {(1, 0): "correct", (1, 1): "bothVulnerable", (0, 0): "bothBenign", (0, 1): "reversed"}[(pv, pb)]
        counts[kind] += 1
    pairs = sum(counts.values())
    return {"commits": len(commits), "pairs": pairs, **counts,
            "shares": {k: (v / pairs if pairs else None) for k, v in counts.items()}}


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _per(value: float | None, count: float | None) -> float | None:
    return value / count if value is not None and count else None


def _csv_sum(rows: list[dict[str, str]], column: str) -> float | None:
    """Sum of a CodeCarbon column over its rows (a resumed run has one row per attempt); null when no row has it."""
    values = [_num(_parse_float(row.get(column))) for row in rows]
    present = [v for v in values if v is not None]
    return sum(present) if present else None


def _parse_float(text: str | None) -> float | None:
    try:
        return float(text) if text not in (None, "") else None
    except ValueError:
        return None


def _gpu_seen(rows: list[dict[str, str]]) -> bool:
    """CodeCarbon writes 0 kWh for a GPU it never saw: only a row naming a GPU (or counting one) measured it."""
    for row in rows:
        count = _parse_float(row.get("gpu_count"))
        if (count or 0) > 0 or (row.get("gpu_model") or "").strip():
            return True
    return False


def energy_summary(run: Run) -> Json:
    """RunSummary.energy: from metrics.json (native), else emissions.csv (imported), else nothing measured (nulls)."""
    n = len(run.records)
    completion = _completion_tokens(run)
    comparable_flag = (run.manifest.get("energy") or {}).get("comparable")
    if run.metrics is not None and isinstance(run.metrics.get("energy"), dict):
        e = run.metrics["energy"]
        estimates = run.metrics.get("energy_estimates") or {}
        inference_s = _num((run.metrics.get("durations_s") or {}).get("inference"))
        figures = {"gpuKwh": _num(e.get("gpu_kwh")), "gpuKwhNet": _num(e.get("gpu_kwh_net_of_baseline")),
                   "nvmlGpuKwh": _num(e.get("nvml_gpu_kwh")),
                   "nvmlGpuKwhNet": _num(e.get("nvml_gpu_kwh_net_of_baseline")),
                   "cpuKwh": _num(e.get("cpu_kwh")), "ramKwh": _num(e.get("ram_kwh")),
                   "totalKwh": _num(e.get("total_kwh"))}
        source: str | None = "metrics.json"
        complete = e.get("complete") is True
        cpu_estimate, ram_estimate = bool(estimates.get("cpu", True)), bool(estimates.get("ram", True))
    elif run.emissions:
        rows = run.emissions
        inference_s = _csv_sum(rows, "duration")
        gpu = _csv_sum(rows, "gpu_energy") if _gpu_seen(rows) else None
        figures = {"gpuKwh": gpu, "gpuKwhNet": None, "nvmlGpuKwh": None, "nvmlGpuKwhNet": None,
                   "cpuKwh": _csv_sum(rows, "cpu_energy"), "ramKwh": _csv_sum(rows, "ram_energy"),
                   "totalKwh": _csv_sum(rows, "energy_consumed")}
        source = "emissions.csv"
        complete = True  # the file covers the run it came with; nothing says otherwise
        # emissions.csv does not say whether RAPL measured the CPU: count it an estimate, as CodeCarbon's RAM is.
        cpu_estimate, ram_estimate = True, True
    else:
        inference_s = None
        figures = dict.fromkeys(("gpuKwh", "gpuKwhNet", "nvmlGpuKwh", "nvmlGpuKwhNet", "cpuKwh", "ramKwh", "totalKwh"))
        source, complete, cpu_estimate, ram_estimate = None, False, True, True
    # Per-sample and per-token figures only over a run measured in full: partial energy would understate them.
    per_n = n if complete else None
    per_tokens = completion if complete else None
    comparable = comparable_flag if isinstance(comparable_flag, bool) else (source is not None and complete)
    return {
        "source": source, **figures, "cpuEstimate": cpu_estimate, "ramEstimate": ram_estimate,
        "perSample": {k: _per(figures[k], per_n) for k in ("gpuKwh", "gpuKwhNet", "totalKwh")},
        "perOutputToken": {k: _per(figures[k], per_tokens) for k in ("gpuKwh", "gpuKwhNet", "totalKwh")},
        "tokensPerS": _per(float(completion) if completion is not None else None, inference_s),
        "completionTokens": completion, "inferenceS": inference_s,
        "complete": complete, "comparable": bool(comparable and source is not None),
    }


def _completion_tokens(run: Run) -> int | None:
    tokens = (run.metrics or {}).get("tokens") or {}
    if isinstance(tokens.get("completion"), int) and not isinstance(tokens.get("completion"), bool):
        return int(tokens["completion"])
    values = [r.get("completion_tokens") for r in run.records]
    present = [v for v in values if isinstance(v, int) and not isinstance(v, bool)]
    return sum(present) if present else None
