"""The gate rule: per model, does the treatment prompt clearly improve, clearly degrade, or neither; what to do next."""

from __future__ import annotations

from collections.abc import Mapping

from .runs import Json
from .stats import holm

METRIC_NAMES = {"f1": "F1 (positive class = vulnerable)", "accuracy": "accuracy", "macroF1": "macro-F1",
                "mcc": "MCC"}
_SHORT = {"f1": "F1", "accuracy": "accuracy", "macroF1": "macro-F1", "mcc": "MCC"}


def _fmt(x: float | None, signed: bool = False) -> str:
    if x is None:
        return "n/a"
    return f"{x:+.3f}" if signed else f"{x:.3f}"


def _p(x: float | None) -> str:
    return "n/a" if x is None else (f"{x:.2g}" if x < 0.001 else f"{x:.3f}")


def _ci_words(kind: str) -> str:
    return ("paired bootstrap that resamples whole commits, keeping a vulnerable function and its fixed version "
            "together" if kind == "cluster" else "paired bootstrap that resamples individual samples")


def rule_text(d: Json) -> str:
    t, b = d["treatmentPrompt"], d["baselinePrompt"]
    return (f"Within each model, compare {t} (treatment) with {b} (baseline) on {_SHORT[d['metric']]}. If {t} clearly "
            f"improves for every model: approve the next phase (it confirms the improvement at the next scale). If it "
            f"clearly degrades for every model: skip (the trend is established). Otherwise approve: the next phase "
            f"adds a data point.")


def definition_text(d: Json, bootstrap: Json, n_models: int) -> str:
    t, b = d["treatmentPrompt"], d["baselinePrompt"]
    metric = METRIC_NAMES[d["metric"]]
    conf = f"{bootstrap['confidence'] * 100:g}%"
    adjust = (f"after the Holm-Bonferroni adjustment for testing {n_models} model(s) (which keeps the chance of any "
              f"false 'clearly' at or below alpha)" if d["multipleComparisons"] == "holm"
              else "with no adjustment for testing several models")
    ci = (f"the {conf} percentile interval of the {metric} difference ({t} minus {b}) from a "
          f"{_ci_words(d['ciResampling'])} ({bootstrap['resamples']} resamples, seed {bootstrap['seed']}) lies "
          f"entirely above 0"
          if d["requireCiExcludesZero"] else
          f"the {metric} difference ({t} minus {b}) is above 0 (its {conf} bootstrap interval is reported but not "
          f"required to exclude 0)")
    return (f"'Clearly improves' for a model means both: (1) the exact McNemar test on the samples both runs answered "
            f"gives p < alpha = {d['alpha']:g} {adjust}, with {t} right on more of the samples where the two runs "
            f"disagree than {b} (c > b); and (2) {ci}. 'Clearly degrades' is the same pointing down. Anything else is "
            f"inconclusive: too little evidence either way, which is not evidence of no effect.")


def adjust(contrasts: list[Json], method: str) -> None:
    """Fill mcnemar.pAdjusted of the decision's per-model contrasts (Holm across them; none: left null)."""
    if method != "holm":
        return
    adjusted = holm([c["mcnemar"]["pValue"] for c in contrasts])
    for comparison, p in zip(contrasts, adjusted, strict=True):
        comparison["mcnemar"]["pAdjusted"] = p


def verdict(comparison: Json, d: Json) -> tuple[str, str]:
    """(improves | degrades | inconclusive, why in words) for one treatment-vs-baseline comparison (a = baseline)."""
    t, b = d["treatmentPrompt"], d["baselinePrompt"]
    mc = comparison["mcnemar"]
    delta = comparison[d["metric"]]
    holm_on = d["multipleComparisons"] == "holm"
    p = mc["pAdjusted"] if holm_on and mc["pAdjusted"] is not None else mc["pValue"]
    ci = delta["ciCluster"] if d["ciResampling"] == "cluster" else delta["ciSample"]
    diff = delta["diff"]
    name = _SHORT[d["metric"]]
    kind = "commit-cluster" if d["ciResampling"] == "cluster" else "sample"
    facts = (f"{name} {_fmt(delta['a'])} -> {_fmt(delta['b'])} ({_fmt(diff, True)}; {kind} CI "
             f"[{_fmt(ci[0] if ci else None, True)}, {_fmt(ci[1] if ci else None, True)}]); McNemar b={mc['b']}, "
             f"c={mc['c']}, p={_p(mc['pValue'])}" + (f" (Holm {_p(mc['pAdjusted'])})" if holm_on else "")
             + f" on {comparison['nCommon']} common samples")
    if diff is None or ci is None:
        return "inconclusive", f"no common samples between the {b} and {t} runs: nothing to compare"
    significant = p is not None and p < d["alpha"]
    for direction, sign in (("improves", 1), ("degrades", -1)):
        mcnemar_way = (mc["c"] - mc["b"]) * sign > 0
        metric_way = diff * sign > 0
        ci_way = (ci[0] > 0) if sign > 0 else (ci[1] < 0)
        if significant and mcnemar_way and metric_way and (ci_way or not d["requireCiExcludesZero"]):
            return direction, f"{facts}: {t} clearly {direction} {name} (p < {d['alpha']:g}" + (
                ", interval excludes 0)." if d["requireCiExcludesZero"] else ").")
    reasons: list[str] = []
    if not significant:
        reasons.append(f"McNemar p{' (Holm)' if holm_on else ''} {_p(p)} is not below {d['alpha']:g}")
    if d["requireCiExcludesZero"] and ci[0] <= 0 <= ci[1]:
        reasons.append("the interval includes 0")
    if (mc["c"] - mc["b"]) * diff < 0 or (diff == 0) != (mc["c"] == mc["b"]):
        reasons.append(f"McNemar (c - b = {mc['c'] - mc['b']}) and the {name} difference point different ways")
    if not reasons:
        reasons.append("the McNemar test and the interval do not agree on a direction")
    return "inconclusive", f"{facts}: inconclusive ({'; '.join(reasons)})."


def decide(models: list[str], contrasts: Mapping[str, Json | None], missing: Mapping[str, str],
           settings: Json) -> Json:
    """Decision for a phase. `models`: the phase's models in order; `contrasts[model]`: its baseline-vs-treatment
    comparison (a = baseline, b = treatment) or None, with `missing[model]` saying why. Sets each contrast's
    `verdict` and Holm-adjusted p in place."""
    d, bootstrap = settings["decision"], settings["bootstrap"]
    present = [contrasts[m] for m in models if contrasts.get(m) is not None]
    adjust([c for c in present if c is not None], d["multipleComparisons"])
    per_model: list[Json] = []
    for model in models:
        comparison = contrasts.get(model)
        if comparison is None:
            per_model.append({"model": model, "verdict": None, "comparison": None,
                              "why": missing.get(model, "no comparison")})
            continue
        found, why = verdict(comparison, d)
        comparison["verdict"] = found
        per_model.append({"model": model, "verdict": found, "comparison": comparison["id"], "why": why})
    return {"rule": rule_text(d), "definition": definition_text(d, bootstrap, len(present)),
            "perModel": per_model, "recommendation": recommend(per_model, d)}


def _phrase(m: Json) -> str:
    words = {"improves": "clearly improves", "degrades": "clearly degrades", "inconclusive": "is inconclusive"}
    return f"{m['model']} {words.get(m['verdict'] or '', 'has no comparison')}"


def recommend(per_model: list[Json], d: Json) -> Json:
    t, b = d["treatmentPrompt"], d["baselinePrompt"]
    name = _SHORT[d["metric"]]
    judged = [m for m in per_model if m["verdict"] is not None]
    unjudged = [m for m in per_model if m["verdict"] is None]
    found = "; ".join(_phrase(m) for m in per_model)
    if not judged:
        return {"action": "none", "basis": "no-evidence",
                "text": f"No recommendation: no model of this phase has both a {b} and a {t} run to compare, so the "
                        f"rule cannot be applied. Decide on other grounds. ({found or 'no runs'})"}
    verdicts = {m["verdict"] for m in judged}
    if not unjudged and verdicts == {"improves"}:
        return {"action": "approve", "basis": "confirms-improvement",
                "text": f"Approve: {t} clearly improves {name} over {b} for every model ({found}). The next phase "
                        f"tests whether the improvement holds at the next scale."}
    if not unjudged and verdicts == {"degrades"}:
        return {"action": "skip", "basis": "trend-established",
                "text": f"Skip: {t} clearly degrades {name} against {b} for every model ({found}). The trend is "
                        f"established; the next phase would spend money on a settled question."}
    parts = ["Approve: the result is not clear-cut for every model, so the next phase adds a data point."]
    if len(verdicts) > 1:
        parts.append(f"The models disagree on {t} vs {b} ({name}): {found}. The rule skips only when every model "
                     f"clearly degrades and confirms only when every model clearly improves; a split result is a "
                     f"reason to look at the next scale, not a settled trend.")
    elif verdicts == {"inconclusive"}:
        parts.append(f"No model shows a clear difference between {t} and {b} on {name}: {found}. The next phase "
                     f"gives more evidence.")
    else:
        parts.append(f"Found: {found}.")
    if unjudged:
        parts.append("Without a comparison: " + "; ".join(f"{m['model']} ({m['why']})" for m in unjudged) + ".")
    return {"action": "approve", "basis": "adds-data-point", "text": " ".join(parts)}
