"""metrics.json (schemaVersion 1): classification metrics plus energy summed over the run's attempts."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

from . import SCHEMA_VERSION

SCORING = ("positive class = vulnerable; an unparseable or failed output counts as wrong "
           "(fn for a vulnerable sample, fp for a benign one); precision/recall/f1 are 0 when undefined")


@dataclass(frozen=True)
class Confusion:
    tp: int
    fp: int
    tn: int
    fn: int


def confusion(records: list[dict[str, Any]]) -> Confusion:
    tp = fp = tn = fn = 0
    for record in records:
        label, prediction = record["label"], record["prediction"]
        if prediction is None:
            prediction = 1 - label  # scored as wrong
        if label == 1:
            tp, fn = (tp + 1, fn) if prediction == 1 else (tp, fn + 1)
        else:
            fp, tn = (fp + 1, tn) if prediction == 1 else (fp, tn + 1)
    return Confusion(tp, fp, tn, fn)


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else 0.0


def _per(value: float | None, count: int) -> float | None:
    return value / count if value is not None and count else None


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def classification(records: list[dict[str, Any]]) -> dict[str, Any]:
    c = confusion(records)
    n = len(records)
    precision = _ratio(c.tp, c.tp + c.fp)
    recall = _ratio(c.tp, c.tp + c.fn)
    return {
        "n": n,
        "accuracy": _ratio(c.tp + c.tn, n),
        "precision": precision,
        "recall": recall,
        "f1": _ratio(2 * precision * recall, precision + recall),
        "unparseable": sum(1 for r in records if r["prediction"] is None),
        "truncated": sum(1 for r in records if r.get("finish_reason") == "length"),
        "request_errors": sum(1 for r in records if r.get("error")),
        "confusion": {"tp": c.tp, "fp": c.fp, "tn": c.tn, "fn": c.fn},
        "labels": {"vulnerable": sum(1 for r in records if r["label"] == 1),
                   "benign": sum(1 for r in records if r["label"] == 0)},
        "scoring": SCORING,
    }


# Figures that only a metered GPU can give (null without one), then all energy figures (null when nothing was measured).
_GPU_FIGURES = ("gpu_kwh", "gpu_kwh_net_of_baseline", "baseline_gpu_power_w", "gpu_kwh_per_sample",
                "gpu_kwh_net_per_sample", "gpu_kwh_per_output_token", "gpu_kwh_net_per_output_token", "nvml_gpu_kwh",
                "nvml_gpu_kwh_net_of_baseline", "codecarbon_minus_nvml_gpu_kwh", "codecarbon_vs_nvml_gpu_rel")
_ENERGY_FIGURES = (*_GPU_FIGURES, "cpu_kwh", "ram_kwh", "total_kwh")


def energy(attempts: list[dict[str, Any]], n: int, completion_tokens: int) -> dict[str, Any]:
    """Sum the measured inference windows of every attempt (a resumed run has several).

    Each attempt record carries its inference window (from its emissions.csv row) and its own idle baseline;
    the GPU energy net of idle is gross minus baseline GPU power x window duration, per attempt.
    """
    measured = [a for a in attempts if a.get("inference")]
    windows = [a["inference"] for a in measured]
    if not windows:
        # Nothing was measured (every CodeCarbon row missing): no figure at all, never a zero that reads as one.
        return {**{key: None for key in _ENERGY_FIGURES}, "attempts": 0, "measured_samples": 0, "complete": False}
    measured_samples = sum(a["done_after"] - a["done_before"] for a in measured)
    complete = measured_samples == n
    gpu = sum(w["gpu_kwh"] for w in windows)
    baselines: list[dict[str, Any] | None] = [a.get("baseline") for a in measured]
    net: float | None = None
    if windows and all(b is not None for b in baselines):
        net = sum(w["gpu_kwh"] - b["gpu_power_w"] * w["duration_s"] / 3.6e6
                  for w, b in zip(windows, baselines, strict=True) if b is not None)
    nvml_values = [w["nvml_kwh"] for w in windows]
    nvml = sum(nvml_values) if windows and all(v is not None for v in nvml_values) else None
    # The same subtraction on the NVML counter, with the baseline's NVML power (both null without a GPU).
    nvml_net: float | None = None
    if nvml is not None and all(b is not None and b.get("nvml_gpu_power_w") is not None for b in baselines):
        nvml_net = sum(w["nvml_kwh"] - b["nvml_gpu_power_w"] * w["duration_s"] / 3.6e6
                       for w, b in zip(windows, baselines, strict=True) if b is not None)
    last_baseline = baselines[-1] if baselines else None
    # Per-sample and per-token figures only when every sample was measured: partial energy over all samples would
    # understate them.
    per_n = n if complete else 0
    per_tokens = completion_tokens if complete else 0
    return {
        "gpu_kwh": gpu,
        "cpu_kwh": sum(w["cpu_kwh"] for w in windows),
        "ram_kwh": sum(w["ram_kwh"] for w in windows),
        "total_kwh": sum(w["total_kwh"] for w in windows),
        "gpu_kwh_net_of_baseline": net,
        "baseline_gpu_power_w": last_baseline["gpu_power_w"] if last_baseline else None,
        "gpu_kwh_per_sample": _per(gpu, per_n),
        "gpu_kwh_net_per_sample": _per(net, per_n),
        "gpu_kwh_per_output_token": _per(gpu, per_tokens),
        "gpu_kwh_net_per_output_token": _per(net, per_tokens),
        "nvml_gpu_kwh": nvml,
        "nvml_gpu_kwh_net_of_baseline": nvml_net,
        "codecarbon_minus_nvml_gpu_kwh": gpu - nvml if nvml is not None else None,
        "codecarbon_vs_nvml_gpu_rel": (gpu - nvml) / nvml if nvml else None,
        "attempts": len(measured),
        "measured_samples": measured_samples,
        # False when an attempt died without a CodeCarbon row: its samples' energy is missing from the sums.
        "complete": complete,
    }


def build_metrics(run_id: str, model: str, records: list[dict[str, Any]], attempts: list[dict[str, Any]],
                  rapl: bool, gpu_present: bool) -> dict[str, Any]:
    prompt_tokens = sum(r.get("prompt_tokens") or 0 for r in records)
    completion_tokens = sum(r.get("completion_tokens") or 0 for r in records)
    latencies = [float(r["latency_ms"]) for r in records if r.get("latency_ms") is not None and not r.get("error")]
    measured = [a for a in attempts if a.get("inference")]
    last_baseline = next((a["baseline"] for a in reversed(measured) if a.get("baseline")), None)
    energy_figures = energy(attempts, len(records), completion_tokens)
    if not gpu_present:
        # CodeCarbon reports 0 kWh for a GPU it never saw: null, so no zero passes for a measurement.
        energy_figures.update(dict.fromkeys(_GPU_FIGURES))
    return {
        "schemaVersion": SCHEMA_VERSION,
        "run_id": run_id,
        "served_model_name": model,
        **classification(records),
        "tokens": {"prompt": prompt_tokens, "completion": completion_tokens,
                   "total": prompt_tokens + completion_tokens},
        "latency_ms": {"mean": statistics.fmean(latencies) if latencies else None,
                       "p50": _percentile(latencies, 0.5), "p95": _percentile(latencies, 0.95)},
        "durations_s": {"baseline": last_baseline["duration_s"] if last_baseline else None,
                        "inference": sum(a["inference"]["duration_s"] for a in measured)},
        "energy": energy_figures,
        "gpu_present": gpu_present,
        # CodeCarbon 2.7.1: CPU falls back to a TDP constant without RAPL; RAM is always 3 W per 8 GB.
        "energy_estimates": {"cpu": not rapl, "ram": True, "gpu": False},
    }
