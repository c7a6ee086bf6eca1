"""The whole study from its results folder: selected runs, their summaries, comparisons, consistency, decisions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from . import AnalysisError
from .compare import compare_runs, sample_index
from .consistency import consistency, describe_confound
from .decision import decide
from .metrics import classification, energy_summary, pair_metrics
from .runs import Json, Run, discover_runs, read_samples, select_runs
from .settings import normalise_settings, read_settings_file


def model_slug(repo_id: str) -> str:
    """As src/shared/constants.ts modelSlug: the last path segment, filesystem safe."""
    last = repo_id.split("/")[-1]
    return "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in last)


def _gpu(run: Run) -> str:
    m = run.manifest
    count = (m.get("pod") or {}).get("gpuCount")
    name = ((m.get("hardware") or {}).get("gpu") or {}).get("name") or (m.get("pod") or {}).get("gpuTypeId")
    if count is None:
        count = ((m.get("hardware") or {}).get("gpu") or {}).get("count")
    return f"{count if count is not None else '?'}x {name or 'unknown'}"


def _cost(run: Run) -> float | None:
    """The run's share of pod cost: cost per hour x its inference time (the session's pod cost is in `spend`)."""
    per_hr = (run.manifest.get("pod") or {}).get("costPerHr")
    ms = (run.manifest.get("timings") or {}).get("inferenceMs")
    if not isinstance(per_hr, (int, float)) or not isinstance(ms, (int, float)) or per_hr <= 0 \
            or isinstance(per_hr, bool) or isinstance(ms, bool):
        return None
    return round(per_hr * ms / 3.6e6, 6)


def run_summary(run: Run, samples: list[Json] | None) -> Json:
    return {
        "dir": run.dir, "phase": run.phase, "model": run.model, "thinking": run.thinking, "prompt": run.prompt,
        "runId": run.run_id, "imported": run.imported, "simulated": run.simulated, "superseded": run.superseded,
        "n": len(run.records), "duplicateIds": run.duplicate_ids,
        "metrics": classification(run.records), "pairs": pair_metrics(run.records, samples),
        "energy": energy_summary(run), "gpu": _gpu(run), "costUsd": _cost(run),
    }


def prompt_order(settings: Json, prompts: set[str]) -> list[str]:
    """Baseline, treatment, then any other prompt by name: comparisons go earlier (a) vs later (b)."""
    d = settings["decision"]
    head = [d["baselinePrompt"], d["treatmentPrompt"]]
    return [p for p in head if p in prompts] + sorted(prompts - set(head))


def _run_warnings(run: Run, samples_doc: Json | None, index: dict[Any, Any]) -> list[str]:
    out: list[str] = []
    if run.superseded:
        out.append(f"{run.dir}: analysed for {run.phase} {run.model} {run.prompt}; superseded, not averaged in: "
                   f"{', '.join(run.superseded)}")
    energy = run.manifest.get("energy") or {}
    if energy.get("comparable") is False:
        out.append(f"{run.dir}: energy not comparable with runs measured in one piece: "
                   f"{'; '.join(energy.get('reasons') or []) or 'no reason given'}")
    if run.duplicate_ids:
        out.append(f"{run.dir}: {len(run.duplicate_ids)} duplicated sample id(s) in predictions.jsonl, the first "
                   f"record counts: {run.duplicate_ids[:10]}")
    if samples_doc is not None:
        sha = run.manifest.get("datasetSha256")
        if sha and sha != samples_doc.get("datasetSha256"):
            out.append(f"{run.dir}: its datasetSha256 {sha[:12]}... differs from samples.json's "
                       f"{str(samples_doc.get('datasetSha256'))[:12]}... (another dataset file)")
        unknown = [r["id"] for r in run.records if r["id"] not in index]
        if unknown:
            out.append(f"{run.dir}: {len(unknown)} sample id(s) not in samples.json (no commit: own cluster, no "
                       f"pairs), first {unknown[0]!r}")
        relabelled = [r["id"] for r in run.records if r["id"] in index and index[r["id"]][1] != r["label"]]
        if relabelled:
            out.append(f"{run.dir}: {len(relabelled)} sample(s) labelled differently from samples.json, first "
                       f"{relabelled[0]!r}")
    return out


def _phase_comparisons(phase: str, runs: list[Run], summaries: dict[str, Json], settings: Json,
                       index: dict[Any, Any]) -> tuple[list[Json], dict[str, Json | None], dict[str, str], list[str]]:
    """Prompt within model, then Instruct vs Thinking within prompt; plus the decision's contrasts per model."""
    comparisons: list[Json] = []
    warnings: list[str] = []
    d = settings["decision"]
    prompts = prompt_order(settings, {r.prompt for r in runs})
    models = sorted({r.model for r in runs})
    cell = {(r.model, r.prompt): r for r in runs}
    contrasts: dict[str, Json | None] = {}
    missing: dict[str, str] = {}

    def add(a: Run, b: Run, kind: str, cid: str, label: str) -> Json:
        comparison, notes = compare_runs(a, b, kind=kind, comparison_id=cid, label=label, index=index,
                                         energy_a=summaries[a.dir]["energy"], energy_b=summaries[b.dir]["energy"],
                                         settings=settings)
        comparisons.append(comparison)
        warnings.extend(notes)
        return comparison

    for model in models:
        mine = [p for p in prompts if (model, p) in cell]
        for i, pa in enumerate(mine):
            for pb in mine[i + 1:]:
                c = add(cell[(model, pa)], cell[(model, pb)], "prompt", f"{phase}:{model_slug(model)}:{pb}-vs-{pa}",
                        f"{model_slug(model)}: {pb} vs {pa} ({phase})")
                if (pa, pb) == (d["baselinePrompt"], d["treatmentPrompt"]):
                    contrasts[model] = c
        if model not in contrasts:
            lacking = [p for p in (d["baselinePrompt"], d["treatmentPrompt"]) if (model, p) not in cell]
            missing[model] = f"no {' and no '.join(lacking)} run of {model} in {phase}: no comparison"
            contrasts[model] = None
            warnings.append(f"{phase}: {missing[model]}")
    for prompt in prompts:
        instruct = [r for r in runs if r.prompt == prompt and r.thinking is False]
        thinking = [r for r in runs if r.prompt == prompt and r.thinking is True]
        for a in sorted(instruct, key=lambda r: r.model):
            for b in sorted(thinking, key=lambda r: r.model):
                add(a, b, "model", f"{phase}:{prompt}:{model_slug(b.model)}-vs-{model_slug(a.model)}",
                    f"{prompt}: {model_slug(b.model)} vs {model_slug(a.model)} ({phase})")
    return comparisons, contrasts, missing, warnings


def _cross_phase(by_phase: dict[str, list[Run]], summaries: dict[str, Json], settings: Json,
                 index: dict[Any, Any]) -> tuple[list[Json], list[str]]:
    """Model scale across phases: same prompt, same Instruct/Thinking kind; a = `from`, b = `to`."""
    out: list[Json] = []
    warnings: list[str] = []
    for pair in settings["crossPhase"]:
        src, dst = pair["from"], pair["to"]
        for a in by_phase.get(src, []):
            for b in by_phase.get(dst, []):
                if a.prompt != b.prompt or a.thinking is None or a.thinking != b.thinking:
                    continue
                kind = "thinking" if a.thinking else "instruct"
                comparison, notes = compare_runs(
                    a, b, kind="phase", index=index, settings=settings,
                    comparison_id=f"{dst}-vs-{src}:{a.prompt}:{model_slug(b.model)}-vs-{model_slug(a.model)}",
                    label=f"{a.prompt}, {kind}: {model_slug(b.model)} ({dst}) vs {model_slug(a.model)} ({src})",
                    energy_a=summaries[a.dir]["energy"], energy_b=summaries[b.dir]["energy"])
                out.append(comparison)
                warnings.extend(notes)
    return out, warnings


def analyze_study(results_dir: Path, study: str, settings: dict[str, Any] | None = None, *,
                  phase_order: list[str] | None = None,
                  run_dirs: dict[str, list[str]] | None = None) -> dict[str, Any]:
    """{"settings", "phaseOrder", "phases": {phase: {"runs", "comparisons", "decision", "warnings"}}, "consistency",
    "warnings"} for every phase found on disk.

    `settings` is the study's analysis settings (defaults filled in); None reads results/<study>/analysis-settings.json
    (else defaults). The phase order and the explicit run choices come from that file too unless given. Cross-phase
    comparisons sit in their `to` phase. Raises AnalysisError on unreadable input.
    """
    results_dir = Path(results_dir)
    if not (results_dir / study).is_dir():
        raise AnalysisError(f"no results for study {study!r} under {results_dir}")
    stored = read_settings_file(results_dir, study) or {}
    settings = normalise_settings(settings if settings is not None else stored.get("settings"))
    order = list(phase_order if phase_order is not None else stored.get("phaseOrder") or [])
    chosen = run_dirs if run_dirs is not None else (stored.get("runDirs") or {})
    runs, warnings = discover_runs(results_dir, study)
    selected = select_runs(runs, chosen)
    samples_doc = read_samples(results_dir, study)
    samples = samples_doc["samples"] if samples_doc else None
    if samples_doc is None:
        warnings.append(f"{study}: no samples.json: no commit pairs, and the cluster bootstrap treats every sample "
                        "as its own cluster")
    index = sample_index(samples)
    order += sorted({r.phase for r in selected} - set(order))
    by_phase: dict[str, list[Run]] = {p: [] for p in order}
    for run in selected:
        by_phase[run.phase].append(run)
    summaries = {r.dir: run_summary(r, samples) for r in selected}
    phases: dict[str, Json] = {}
    for phase in order:
        prompts = prompt_order(settings, {r.prompt for r in by_phase[phase]})
        phase_runs = sorted(by_phase[phase], key=lambda r: (r.model, prompts.index(r.prompt)))
        comparisons, contrasts, missing, notes = _phase_comparisons(phase, phase_runs, summaries, settings, index)
        notes = [w for r in phase_runs for w in _run_warnings(r, samples_doc, index)] + notes
        decision = decide(sorted({r.model for r in phase_runs}), contrasts, missing, settings)
        phases[phase] = {"runs": [summaries[r.dir] for r in phase_runs], "comparisons": comparisons,
                         "decision": decision, "warnings": notes}
    cross, cross_notes = _cross_phase(by_phase, summaries, settings, index)
    for comparison in cross:
        phases[comparison["b"]["phase"]]["comparisons"].append(comparison)
    matrix = consistency(selected, settings["variablesUnderStudy"])
    confounds = [describe_confound(r) for r in matrix["rows"] if r["status"] == "differs-confound"]
    study_warnings = warnings + cross_notes + [f"confound: {c}" for c in confounds]
    all_warnings = study_warnings + [w for p in order for w in phases[p]["warnings"]]
    return {"settings": settings, "phaseOrder": order, "phases": phases, "consistency": matrix,
            "warnings": all_warnings, "studyWarnings": study_warnings}
