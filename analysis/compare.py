"""One paired comparison of two runs on the samples both answered: McNemar, bootstrap deltas, energy side by side."""

from __future__ import annotations

from typing import Any

from .metrics import effective_prediction
from .runs import Json, Run, SampleId, id_key
from .stats import mcnemar_test, paired_deltas

SampleIndex = dict[SampleId, tuple[int, int, str | None]]  # id -> (dataset position, label, commit)


def sample_index(samples: list[Json] | None) -> SampleIndex:
    return {s["id"]: (i, int(s["label"]), s.get("commit")) for i, s in enumerate(samples or [])}


def _ref(run: Run) -> Json:
    return {"dir": run.dir, "phase": run.phase, "model": run.model, "prompt": run.prompt}


def _side_by_side(a: float | None, b: float | None) -> Json:
    return {"a": a, "b": b, "diff": b - a if a is not None and b is not None else None,
            "ratio": b / a if a is not None and b is not None and a != 0 else None}


def energy_contrast(energy_a: Json, energy_b: Json) -> Json:
    return {"gpuKwhPerSample": _side_by_side(energy_a["perSample"]["gpuKwh"], energy_b["perSample"]["gpuKwh"]),
            "gpuKwhNetPerSample": _side_by_side(energy_a["perSample"]["gpuKwhNet"], energy_b["perSample"]["gpuKwhNet"]),
            "totalKwhPerSample": _side_by_side(energy_a["perSample"]["totalKwh"], energy_b["perSample"]["totalKwh"]),
            "tokensPerS": _side_by_side(energy_a["tokensPerS"], energy_b["tokensPerS"]),
            "note": "one measurement per run: no interval"}


def compare_runs(run_a: Run, run_b: Run, *, kind: str, comparison_id: str, label: str, index: SampleIndex,
                 energy_a: Json, energy_b: Json, settings: Json) -> tuple[Json, list[str]]:
    """Comparison (difference = b - a) and warnings. Only ids both runs answered count; the rest are reported."""
    by_a = {r["id"]: r for r in run_a.records}
    by_b = {r["id"]: r for r in run_b.records}
    order_a = {r["id"]: i for i, r in enumerate(run_a.records)}
    # Dataset order first (stable bootstrap input), then ids the dataset lacks in A's order.
    common = sorted((i for i in by_a if i in by_b),
                    key=lambda i: (0, index[i][0], 0) if i in index else (1, order_a[i], 0))
    warnings: list[str] = []
    mismatched = [i for i in common if by_a[i]["label"] != by_b[i]["label"]]
    if mismatched:
        warnings.append(f"{comparison_id}: {len(mismatched)} sample(s) carry different labels in the two runs "
                        f"(first: {mismatched[0]!r}); the labels of {run_a.dir} are used")
    labels = [int(by_a[i]["label"]) for i in common]
    pred_a = [effective_prediction(by_a[i]) for i in common]
    pred_b = [effective_prediction({**by_b[i], "label": by_a[i]["label"]}) for i in common]
    clusters: list[Any | None] = [index[i][2] if i in index else None for i in common]
    bootstrap = settings["bootstrap"]
    deltas = paired_deltas(labels, pred_a, pred_b, clusters, bootstrap["resamples"], bootstrap["seed"],
                           bootstrap["confidence"])
    only_a = sorted((i for i in by_a if i not in by_b), key=id_key)
    only_b = sorted((i for i in by_b if i not in by_a), key=id_key)
    if only_a or only_b:
        warnings.append(f"{comparison_id}: compared on the {len(common)} common samples; left out {len(only_a)} only "
                        f"in {run_a.dir} and {len(only_b)} only in {run_b.dir}")
    comparison = {
        "id": comparison_id, "kind": kind, "label": label, "a": _ref(run_a), "b": _ref(run_b),
        "nCommon": len(common), "leftOut": {"onlyInA": only_a, "onlyInB": only_b},
        "duplicateIds": sorted(set(run_a.duplicate_ids) | set(run_b.duplicate_ids), key=id_key),
        "mcnemar": mcnemar_test(labels, pred_a, pred_b),
        **deltas,
        "energy": energy_contrast(energy_a, energy_b),
        "verdict": None,
    }
    return comparison, warnings
