"""The study report: results/<study>/report.md and a self-contained report.html, from the results folder alone."""

from __future__ import annotations

import html
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import AnalysisError
from . import figures as figs
from .figures import FigureFile, provenance, run_label, short_model


@dataclass(frozen=True)
class Heading:
    level: int
    text: str


@dataclass(frozen=True)
class Para:
    text: str
    strong: bool = False


@dataclass(frozen=True)
class Table:
    headers: list[str]
    rows: list[list[str]]


@dataclass(frozen=True)
class Bullets:
    items: list[str]


@dataclass(frozen=True)
class Fig:
    figure: FigureFile


Block = Heading | Para | Table | Bullets | Fig

NOT_MEASURED = "not measured"
MAX_IDS = 20  # ids listed inline in a table cell; the packet has them all


# ---------------------------------------------------------------- reading the results folder


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def load_gate_decisions(study_dir: Path) -> tuple[list[dict[str, Any]], str | None]:
    """The recorded decisions, and what is wrong with the file when it exists but cannot be used (said, not hidden)."""
    path = study_dir / "gate-decisions.json"
    if not path.exists():
        return [], None
    saved = _read_json(path)
    decisions = saved.get("decisions") if isinstance(saved, dict) else None
    if not isinstance(decisions, list):
        return [], f"{path.name} exists but holds no readable `decisions` list"
    return [d for d in decisions if isinstance(d, dict)], None


def run_path(results_dir: Path, study: str, run_dir: str) -> Path:
    """RunSummary.dir is relative to the results folder (or absolute); tolerate one relative to the study too."""
    path = Path(run_dir)
    if path.is_absolute():
        return path
    direct = results_dir / path
    return direct if direct.exists() else results_dir / study / path


def load_manifests(results_dir: Path, study: str, runs: list[dict[str, Any]]) -> list[tuple[dict[str, Any], dict]]:
    """(run summary, its manifest) for every run whose manifest can be read."""
    pairs = []
    for run in runs:
        manifest = _read_json(run_path(results_dir, study, str(run.get("dir", ""))) / "manifest.json")
        if isinstance(manifest, dict):
            pairs.append((run, manifest))
    return pairs


def phase_cost(study_dir: Path, phase: str, runs: list[dict[str, Any]]) -> tuple[float | None, str]:
    """summary.json's phase total (every session, failed ones too) when present, else the runs' own costs."""
    summary = _read_json(study_dir / phase / "summary.json")
    total = ((summary or {}).get("costUsd") or {}).get("phaseTotal") if isinstance(summary, dict) else None
    if isinstance(total, (int, float)):
        return float(total), "summary.json (costUsd.phaseTotal)"
    costs = [float(r["costUsd"]) for r in runs if isinstance(r.get("costUsd"), (int, float))]
    if costs:
        return sum(costs), f"sum of {len(costs)} run cost(s) (no summary.json total)"
    return None, "not recorded"


# ---------------------------------------------------------------- formatting


def fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        # Fixed decimals read best in a column; tiny p-values keep their significant digits.
        return f"{value:.{digits}g}" if value != 0 and abs(value) < 1e-3 else f"{value:.{digits}f}"
    return str(value)


def fmt_kwh(value: Any) -> str:
    return NOT_MEASURED if value is None else f"{float(value):.4g}"


def fmt_ci(ci: Any) -> str:
    if not isinstance(ci, (list, tuple)) or len(ci) != 2 or None in ci:
        return "—"
    return f"[{fmt(ci[0])}, {fmt(ci[1])}]"


def fmt_ids(ids: list[Any]) -> str:
    if not ids:
        return "none"
    shown = ", ".join(str(i) for i in ids[:MAX_IDS])
    return shown + (f" … and {len(ids) - MAX_IDS} more" if len(ids) > MAX_IDS else "")


def fmt_usd(value: float | None) -> str:
    return "not recorded" if value is None else f"${value:.4f}"


def _energy(run: dict[str, Any]) -> dict[str, Any]:
    return run.get("energy") or {}


def gpu_per_sample(run: dict[str, Any], key: str) -> str:
    energy = _energy(run)
    value = (energy.get("perSample") or {}).get(key)
    if value is not None:
        return fmt_kwh(value)
    whole = energy.get("gpuKwh" if key == "gpuKwh" else "gpuKwhNet")
    return NOT_MEASURED if whole is None else "incomplete measurement"


def component_per_sample(run: dict[str, Any], key: str, estimate_key: str) -> str:
    energy = _energy(run)
    value, n = energy.get(key), run.get("n") or 0
    if value is None:
        return NOT_MEASURED
    if not energy.get("complete", True) or not n:
        return "incomplete measurement"
    estimate = " (est.)" if energy.get(estimate_key) else ""
    return f"{float(value) / n:.4g}{estimate}"


# ---------------------------------------------------------------- sections


def header_blocks(study: str, runs: list[dict[str, Any]]) -> list[Block]:
    blocks: list[Block] = [Heading(1, f"Study report: {study}")]
    simulated = [r for r in runs if r.get("simulated")]
    imported = [r for r in runs if r.get("imported")]
    if simulated:
        blocks.append(Para(f"SIMULATED: {len(simulated)} of {len(runs)} run(s) were made in the sandbox (simulated "
                           "vLLM, no real GPU). Their accuracy and energy are not measurements of any model; every "
                           "such row and figure point is labelled (simulated).", strong=True))
    if imported:
        blocks.append(Para(f"IMPORTED: {len(imported)} run(s) were made outside this tool and imported from their "
                           "files; every such row and figure point is labelled (imported).", strong=True))
    if not runs:
        blocks.append(Para("No runs found in this results folder yet."))
    return blocks


def main_table(runs: list[dict[str, Any]]) -> Table:
    headers = ["model", "prompt", "source", "GPU", "n", "accuracy", "precision", "recall", "F1", "macro-F1", "MCC",
               "unparseable / truncated / errors", "GPU kWh/sample (gross)", "GPU kWh/sample (net)",
               "CPU kWh/sample", "RAM kWh/sample", "tokens/s", "pod cost"]
    rows = []
    for run in runs:
        m = run.get("metrics") or {}
        rows.append([
            short_model(str(run.get("model"))), str(run.get("prompt")), provenance(run), str(run.get("gpu") or "—"),
            fmt(run.get("n")), fmt(m.get("accuracy")), fmt(m.get("precision")), fmt(m.get("recall")),
            fmt(m.get("f1")), fmt(m.get("macroF1")), fmt(m.get("mcc")),
            f"{fmt(m.get('unparseable'))} / {fmt(m.get('truncated'))} / {fmt(m.get('requestErrors'))}",
            gpu_per_sample(run, "gpuKwh"), gpu_per_sample(run, "gpuKwhNet"),
            component_per_sample(run, "cpuKwh", "cpuEstimate"), component_per_sample(run, "ramKwh", "ramEstimate"),
            fmt(_energy(run).get("tokensPerS"), 1) if _energy(run).get("tokensPerS") is not None else NOT_MEASURED,
            fmt_usd(run["costUsd"]) if isinstance(run.get("costUsd"), (int, float)) else "not recorded",
        ])
    return Table(headers, rows)


def run_notes(runs: list[dict[str, Any]]) -> list[str]:
    notes = []
    for run in runs:
        label = run_label(run)
        if run.get("duplicateIds"):
            notes.append(f"{label}: duplicate ids (first record counted): {fmt_ids(run['duplicateIds'])}")
        if run.get("superseded"):
            notes.append(f"{label}: superseded runs, not analysed: {', '.join(map(str, run['superseded']))}")
        energy = _energy(run)
        if energy and energy.get("comparable") is False:
            notes.append(f"{label}: energy not comparable with runs measured in one piece (resumed or incomplete)")
        if energy.get("source") == "emissions.csv":
            notes.append(f"{label}: energy from emissions.csv (no metrics.json)")
    return notes


def _by_dir(runs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {str(r.get("dir")): r for r in runs}


def _side(ref: dict[str, Any], runs: dict[str, dict[str, Any]]) -> str:
    run = runs.get(str(ref.get("dir")))
    if run is not None:
        return run_label(run)
    return f"{short_model(str(ref.get('model')))} / {ref.get('prompt')} [{ref.get('phase')}]"


def _tags(comparison: dict[str, Any], runs: dict[str, dict[str, Any]]) -> str:
    tags = sorted({provenance(runs[str(s.get("dir"))]) for s in (comparison.get("a") or {}, comparison.get("b") or {})
                   if str(s.get("dir")) in runs})
    return " + ".join(tags) if tags else "—"


def comparison_table(comparisons: list[dict[str, Any]], runs: dict[str, dict[str, Any]]) -> Table:
    headers = ["comparison (b − a)", "kind", "source", "n common", "McNemar b", "McNemar c", "p", "p (Holm)",
               "ΔF1", "ΔF1 CI (sample)", "ΔF1 CI (cluster)", "Δaccuracy", "Δacc CI (sample)", "Δacc CI (cluster)",
               "verdict"]
    rows = []
    for c in comparisons:
        mc, f1, acc = c.get("mcnemar") or {}, c.get("f1") or {}, c.get("accuracy") or {}
        rows.append([
            f"{c.get('label') or c.get('id')}: {_side(c.get('a') or {}, runs)} → {_side(c.get('b') or {}, runs)}",
            str(c.get("kind")), _tags(c, runs), fmt(c.get("nCommon")), fmt(mc.get("b")), fmt(mc.get("c")),
            fmt(mc.get("pValue")), fmt(mc.get("pAdjusted")), fmt(f1.get("diff")), fmt_ci(f1.get("ciSample")),
            fmt_ci(f1.get("ciCluster")), fmt(acc.get("diff")), fmt_ci(acc.get("ciSample")),
            fmt_ci(acc.get("ciCluster")), str(c.get("verdict") or "—"),
        ])
    return Table(headers, rows)


def _energy_diff(entry: Any, kwh: bool = True) -> str:
    if not isinstance(entry, dict) or entry.get("a") is None or entry.get("b") is None:
        return NOT_MEASURED
    show = fmt_kwh if kwh else (lambda v: fmt(v, 1))
    ratio = f", ×{fmt(entry.get('ratio'), 3)}" if entry.get("ratio") is not None else ""
    return f"{show(entry['a'])} → {show(entry['b'])} (Δ {show(entry.get('diff'))}{ratio})"


def energy_comparison_table(comparisons: list[dict[str, Any]]) -> Table:
    headers = ["comparison", "GPU kWh/sample", "GPU kWh/sample (net)", "total kWh/sample", "tokens/s", "note"]
    rows = []
    for c in comparisons:
        e = c.get("energy") or {}
        rows.append([str(c.get("id")), _energy_diff(e.get("gpuKwhPerSample")),
                     _energy_diff(e.get("gpuKwhNetPerSample")),
                     _energy_diff(e.get("totalKwhPerSample")), _energy_diff(e.get("tokensPerS"), kwh=False),
                     str(e.get("note") or "")])
    return Table(headers, rows)


def comparison_notes(comparisons: list[dict[str, Any]]) -> list[str]:
    notes = []
    for c in comparisons:
        left = c.get("leftOut") or {}
        if left.get("onlyInA") or left.get("onlyInB"):
            notes.append(f"{c.get('id')}: left out (not in both runs): only in a: {fmt_ids(left.get('onlyInA') or [])};"
                         f" only in b: {fmt_ids(left.get('onlyInB') or [])}")
        if c.get("duplicateIds"):
            notes.append(f"{c.get('id')}: duplicate ids: {fmt_ids(c['duplicateIds'])}")
    return notes


def _share(pairs: dict[str, Any], key: str) -> str:
    share = (pairs.get("shares") or {}).get(key)
    return f"{fmt(pairs.get(key))} ({share * 100:.1f}%)" if isinstance(share, (int, float)) else fmt(pairs.get(key))


def pairs_table(runs: list[dict[str, Any]]) -> Table | None:
    with_pairs = [r for r in runs if r.get("pairs")]
    if not with_pairs:
        return None
    rows = [[short_model(str(r.get("model"))), str(r.get("prompt")), provenance(r), fmt(r["pairs"].get("commits")),
             fmt(r["pairs"].get("pairs")), *(_share(r["pairs"], k) for k in ("correct", "bothVulnerable",
                                                                             "bothBenign", "reversed"))]
            for r in with_pairs]
    return Table(["model", "prompt", "source", "commits", "pairs", "pair correct", "both called vulnerable",
                  "both called benign", "reversed"], rows)


def phase_blocks(phase: str, data: dict[str, Any], figures: list[FigureFile]) -> list[Block]:
    runs, comparisons = data.get("runs") or [], data.get("comparisons") or []
    blocks: list[Block] = [Heading(2, f"Phase {phase}{figs.title_suffix(runs)}")]
    if not runs:
        return [*blocks, Para("No runs in this phase yet.")]
    blocks += [Heading(3, "Runs"), main_table(runs)]
    notes = run_notes(runs)
    if notes:
        blocks.append(Bullets(notes))
    blocks.append(Heading(3, "Paired comparisons"))
    if comparisons:
        by_dir = _by_dir(runs)
        blocks += [comparison_table(comparisons, by_dir), Para("Energy differences (one measurement per run):"),
                   energy_comparison_table(comparisons)]
        notes = comparison_notes(comparisons)
        if notes:
            blocks.append(Bullets(notes))
    else:
        blocks.append(Para("No paired comparison in this phase (it needs two runs over the same samples)."))
    blocks.append(Heading(3, "Pair-wise metrics (vulnerable and fixed function of one commit)"))
    table = pairs_table(runs)
    blocks.append(table if table else Para("No commit pairs: the dataset has no commit with both a vulnerable and "
                                           "a benign function, or the runs carry no pair metrics."))
    blocks += decision_blocks(data.get("decision"))
    blocks.append(Heading(3, "Figures"))
    blocks += [Fig(f) for f in figures]
    return blocks


def decision_blocks(decision: Any) -> list[Block]:
    if not isinstance(decision, dict):
        return []
    blocks: list[Block] = [Heading(3, "Decision rule applied to this phase")]
    for key in ("rule", "definition"):
        if decision.get(key):
            blocks.append(Para(str(decision[key])))
    per_model = decision.get("perModel") or []
    if per_model:
        blocks.append(Table(["model", "verdict", "comparison", "why"],
                            [[str(m.get("model")), str(m.get("verdict") or "no comparison"),
                              str(m.get("comparison") or "—"), str(m.get("why") or "")] for m in per_model]))
    rec = decision.get("recommendation") or {}
    if rec:
        text = f"Recommendation: {rec.get('action')} ({rec.get('basis')}). {rec.get('text') or ''}"
        blocks.append(Para(text.strip()))
    return blocks


def _value_text(value: Any) -> str:
    if value is None:
        return "unknown"
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _row_values(row: dict[str, Any], labels: dict[str, str]) -> str:
    """One value when consistent; otherwise each value with the runs that have it."""
    values = row.get("values") or {}
    distinct = row.get("distinct") or []
    if len(distinct) <= 1:
        return _value_text(distinct[0]) if distinct else "—"
    groups: dict[str, list[str]] = {}
    for run_dir, value in sorted(values.items()):
        groups.setdefault(_value_text(value), []).append(labels.get(run_dir, run_dir))
    return "; ".join(f"{v}: {', '.join(names)}" for v, names in groups.items())


def consistency_blocks(consistency: dict[str, Any], runs: list[dict[str, Any]]) -> list[Block]:
    labels = {str(r.get("dir")): _long_label(r) for r in runs}
    rows = consistency.get("rows") or []
    confounds = consistency.get("confounds") or []
    blocks: list[Block] = [Heading(2, "Consistency of controlled variables")]
    if confounds:
        items = []
        for name in confounds:
            row = next((r for r in rows if r.get("variable") == name), {})
            values = _row_values(row, labels) if row else ""
            items.append(f"CONFOUND {name} ({row.get('scope') or 'scope unknown'}): {values}"
                         + (f" — {row['note']}" if row.get("note") else ""))
        blocks += [Para(f"{len(confounds)} confound(s): controlled variables that differ between runs being "
                        "compared.", strong=True), Bullets(items)]
    else:
        blocks.append(Para("No confounds: every controlled variable is the same where runs are compared."))
    table_rows = [[str(r.get("variable")), str(r.get("group")), str(r.get("status")), str(r.get("scope") or "—"),
                   _row_values(r, labels), str(r.get("note") or "")] for r in rows]
    blocks.append(Table(["variable", "group", "status", "scope", "values", "note"], table_rows))
    return blocks


def gate_blocks(decisions: list[dict[str, Any]], problem: str | None) -> list[Block]:
    blocks: list[Block] = [Heading(2, "Gate decisions")]
    if problem:
        blocks.append(Para(f"Gate decisions unreadable: {problem}.", strong=True))
    if not decisions:
        return blocks if problem else [*blocks, Para("No gate decisions yet (no gate-decisions.json).")]
    rows = [[str(d.get(k) if d.get(k) is not None else "—") for k in
             ("gate", "afterPhase", "decision", "by", "at", "via", "reason", "packetSha256")] for d in decisions]
    return [*blocks, Table(["gate", "after phase", "decision", "by", "when", "via", "why", "packet sha256"], rows)]


def cost_blocks(study_dir: Path, phases: list[str], analysis: dict[str, Any]) -> list[Block]:
    rows, total, known = [], 0.0, 0
    for phase in phases:
        cost, source = phase_cost(study_dir, phase, (analysis["phases"].get(phase) or {}).get("runs") or [])
        rows.append([phase, fmt_usd(cost), source])
        if cost is not None:
            total, known = total + cost, known + 1
    rows.append(["study total", fmt_usd(total if known else None),
                 f"{known} of {len(phases)} phase(s) with a recorded cost"])
    return [Heading(2, "Cost"), Table(["phase", "pod cost", "source"], rows)]


def warning_blocks(warnings: list[Any]) -> list[Block]:
    # Confounds are listed in full under the consistency section; repeating them here would bury the rest.
    rest = [str(w) for w in warnings if not str(w).startswith("confound: ")]
    confounds = len(warnings) - len(rest)
    if not rest and not confounds:
        return []
    items = rest + ([f"{confounds} confound(s): see 'Consistency of controlled variables'"] if confounds else [])
    return [Heading(2, "Warnings"), Bullets(items)]


# ---------------------------------------------------------------- methods paragraph


Getter = Callable[[dict[str, Any]], Any]


def _get(manifest: dict[str, Any], *path: str) -> Any:
    node: Any = manifest
    for key in path:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node


def _say(what: str, pairs: list[tuple[dict[str, Any], dict]], get: Getter) -> str:
    """'what value', or, where runs differ, every value with its runs: never one value picked for all."""
    groups: dict[str, list[str]] = {}
    for run, manifest in pairs:
        value = get(manifest)
        groups.setdefault("not recorded" if value is None else _value_text(value), []).append(_long_label(run))
    if len(groups) == 1:
        return f"{what} {next(iter(groups))}"
    parts = "; ".join(f"{value} ({', '.join(labels)})" for value, labels in groups.items())
    return f"{what} differing between runs: {parts}"


def _gpu(manifest: dict[str, Any]) -> str | None:
    gpu = _get(manifest, "hardware", "gpu")
    if isinstance(gpu, dict) and gpu.get("present") and gpu.get("name"):
        return f"{gpu.get('count')}x {gpu['name']}"
    pod = manifest.get("pod") or {}
    if isinstance(gpu, dict) and gpu.get("present") is False:
        note = _get(manifest, "hardware", "note")
        return f"no GPU ({note})" if note else "no GPU"
    return f"{pod.get('gpuCount')}x {pod['gpuTypeId']} (pod type; not confirmed on the host)" \
        if pod.get("gpuTypeId") else None


def _vllm_version(manifest: dict[str, Any]) -> Any:
    return (_get(manifest, "hardware", "versions", "vllm") or _get(manifest, "vllm", "reportedVersion")
            or _get(manifest, "vllm", "version"))


def _codecarbon_version(manifest: dict[str, Any]) -> Any:
    return _get(manifest, "hardware", "versions", "codecarbon") or _get(manifest, "codecarbon", "version")


def _on_off(value: Any) -> Any:
    return None if value is None else ("on" if value else "off")


def _long_label(run: dict[str, Any]) -> str:
    return f"{run.get('phase')}/{run_label(run)}"


def _labels(runs: list[dict[str, Any]]) -> str:
    return ", ".join(_long_label(r) for r in runs)


def _sampling_sentences(pairs: list[tuple[dict[str, Any], dict]]) -> list[str]:
    by_model: dict[str, list[tuple[dict[str, Any], dict]]] = {}
    for run, manifest in pairs:
        by_model.setdefault(str(run.get("model")), []).append((run, manifest))
    sentences = []
    for model, model_pairs in sorted(by_model.items()):
        parts = [_say(name, model_pairs, lambda m, k=key: _get(m, "sampling", k)) for name, key in
                 (("temperature", "temperature"), ("top-p", "topP"), ("top-k", "topK"),
                  ("max tokens", "maxTokens"), ("seed", "seed"))]
        thinking = _say("thinking", model_pairs, lambda m: _on_off(_get(m, "model", "thinking")))
        sentences.append(f"Sampling for {model}: {', '.join(parts)} ({thinking}).")
    return sentences


def _energy_sentences(pairs: list[tuple[dict[str, Any], dict]], runs: list[dict[str, Any]]) -> list[str]:
    native = [(r, m) for r, m in pairs if not m.get("imported")]
    sentences = [_say("Energy was measured with CodeCarbon", pairs, _codecarbon_version)
                 + " over each run's inference window."]
    if native:
        seconds = _say("", native, lambda m: _get(m, "harness", "baselineSeconds")).strip()
        who = "For the runs made by this tool, idle" if len(native) < len(pairs) else "Idle"
        sentences.append(f"{who} baseline: {seconds} seconds idle with the model loaded, on the same pod, before "
                         "each run; net GPU energy = gross GPU energy minus the mean idle GPU power x the inference "
                         "duration.")
    if len(native) < len(pairs):
        sentences.append("Imported runs had no idle baseline measured by this tool: they have no net GPU figure.")
    nvml = [r for r in runs if _energy(r).get("nvmlGpuKwh") is not None]
    no_nvml = [r for r in runs if _energy(r).get("nvmlGpuKwh") is None]
    if nvml:
        sentences.append(f"NVML's energy counter cross-checked CodeCarbon's GPU energy for {_labels(nvml)}.")
    if no_nvml:
        sentences.append(f"No NVML cross-check (no NVML reading) for {_labels(no_nvml)}.")
    estimated = [r for r in runs if _energy(r).get("cpuEstimate") or _energy(r).get("ramEstimate")]
    if estimated:
        sentences.append("CPU and/or RAM energy are CodeCarbon estimates, not measurements (CPU: no RAPL counter; "
                         f"marked (est.)) for {_labels(estimated)}.")
    no_gpu = [r for r in runs if _energy(r).get("gpuKwh") is None]
    if no_gpu:
        sentences.append(f"No GPU energy was measured for {_labels(no_gpu)}: their GPU figures read "
                         "'not measured' and the figures fall back to CodeCarbon's total energy.")
    return sentences


def _import_sentences(pairs: list[tuple[dict[str, Any], dict]]) -> list[str]:
    sentences = []
    for run, manifest in pairs:
        info = manifest.get("import") or {}
        if not manifest.get("imported"):
            continue
        sources = ", ".join(f"{s.get('kind')} {s.get('path')}" for s in info.get("sources") or [])
        version = info.get("codecarbonVersion")
        sentences.append(f"{run.get('phase')}/{run_label(run)} was imported from files made outside this tool "
                         f"({sources or 'sources not recorded'}); CodeCarbon version "
                         f"{version or 'not recorded'} from {info.get('emissionsRows', 0)} emissions row(s).")
    return sentences


def _statistics_sentence(settings: dict[str, Any]) -> str:
    boot = settings.get("bootstrap") or {}
    decision = settings.get("decision") or {}
    holm = decision.get("multipleComparisons") == "holm"
    return ("Statistics: exact McNemar test on the paired correct/wrong outcomes (b + c = 0 gives p = 1); paired "
            f"bootstrap with {boot.get('resamples')} resamples, by sample and by commit cluster, seed "
            f"{boot.get('seed')}, percentile intervals at confidence {boot.get('confidence')}; "
            + ("Holm adjustment across the decision's per-model contrasts" if holm else
               f"multiple-comparison adjustment: {decision.get('multipleComparisons') or 'none'}")
            + f"; decision rule at alpha {decision.get('alpha')} on {decision.get('metric') or '?'} with the "
            f"{decision.get('ciResampling') or '?'} interval.")


# What the methods paragraph states, in order, each from the manifests (per run where they differ).
_HARDWARE: list[tuple[str, Getter]] = [
    ("Hardware: GPU", _gpu),
    ("NVIDIA driver", lambda m: _get(m, "hardware", "versions", "nvidiaDriver")),
    ("CUDA runtime", lambda m: _get(m, "hardware", "versions", "cudaRuntime")),
    ("CUDA driver", lambda m: _get(m, "hardware", "versions", "cudaDriver")),
]
_SOFTWARE: list[tuple[str, Getter]] = [
    ("Serving: vLLM", _vllm_version),
    ("torch", lambda m: _get(m, "hardware", "versions", "torch")),
    ("dtype", lambda m: _get(m, "vllm", "dtype")),
    ("max model length", lambda m: _get(m, "vllm", "maxModelLen")),
    ("tensor parallel size", lambda m: _get(m, "vllm", "tensorParallelSize")),
    ("prefix caching", lambda m: _on_off(_get(m, "vllm", "enablePrefixCaching"))),
    ("concurrency", lambda m: _get(m, "harness", "concurrency")),
]


def methods_blocks(pairs: list[tuple[dict[str, Any], dict]], runs: list[dict[str, Any]],
                   settings: dict[str, Any]) -> list[Block]:
    blocks: list[Block] = [Heading(2, "Methods")]
    if not pairs:
        return [*blocks, Para("No run manifest could be read."), Para(_statistics_sentence(settings))]
    hardware = "; ".join(_say(what, pairs, get) for what, get in _HARDWARE) + "."
    software = "; ".join(_say(what, pairs, get) for what, get in _SOFTWARE) + "."
    simulated = [r for r, _ in pairs if r.get("simulated")]
    setup = [f"SIMULATED runs (sandbox, simulated vLLM): {_labels(simulated)}."] if simulated else []
    paragraphs = [[*setup, hardware, software], _sampling_sentences(pairs),
                  [*_energy_sentences(pairs, runs), *_import_sentences(pairs)], [_statistics_sentence(settings)]]
    return [*blocks, *(Para(" ".join(p)) for p in paragraphs if p)]


# ---------------------------------------------------------------- rendering


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_md(blocks: list[Block], report_dir: Path) -> str:
    out: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            out.append(f"{'#' * block.level} {block.text}")
        elif isinstance(block, Para):
            out.append(f"**{block.text}**" if block.strong else block.text)
        elif isinstance(block, Bullets):
            out.append("\n".join(f"- {item}" for item in block.items))
        elif isinstance(block, Table):
            lines = ["| " + " | ".join(map(_md_cell, block.headers)) + " |",
                     "|" + "---|" * len(block.headers)]
            lines += ["| " + " | ".join(map(_md_cell, row)) + " |" for row in block.rows]
            out.append("\n".join(lines))
        else:
            rel = block.figure.svg.relative_to(report_dir).as_posix()
            out.append(f"![{block.figure.title}]({rel})\n\n*{block.figure.caption}* "
                       f"(PNG: {block.figure.png.relative_to(report_dir).as_posix()})")
    return "\n\n".join(out) + "\n"


_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1400px; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 0.85em; }
th, td { border: 1px solid #bbb; padding: 0.25em 0.5em; text-align: left; vertical-align: top; }
th { background: #eee; }
.banner { background: #fde2e2; border: 2px solid #c00; padding: 0.5em 1em; font-weight: bold; }
figure { margin: 1em 0; } figure svg { max-width: 100%; height: auto; }
figcaption { font-style: italic; font-size: 0.9em; }
.scroll { overflow-x: auto; }
"""


def _html_block(block: Block, index: int) -> str:
    if isinstance(block, Heading):
        return f"<h{block.level}>{html.escape(block.text)}</h{block.level}>"
    if isinstance(block, Para):
        css = ' class="banner"' if block.strong else ""
        return f"<p{css}>{html.escape(block.text)}</p>"
    if isinstance(block, Bullets):
        return "<ul>" + "".join(f"<li>{html.escape(i)}</li>" for i in block.items) + "</ul>"
    if isinstance(block, Table):
        head = "".join(f"<th>{html.escape(h)}</th>" for h in block.headers)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in block.rows)
        return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'
    svg = figs.inline_svg(block.figure.svg, f"f{index}")
    return f"<figure>{svg}<figcaption>{html.escape(block.figure.caption)}</figcaption></figure>"


def render_html(blocks: list[Block], title: str) -> str:
    body = "\n".join(_html_block(block, index) for index, block in enumerate(blocks))
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{html.escape(title)}</title>\n'
            f"<style>{_CSS}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n")


# ---------------------------------------------------------------- entry points


def _phases(analysis: dict[str, Any]) -> list[str]:
    order = [p for p in analysis.get("phaseOrder") or [] if p in analysis["phases"]]
    return order + sorted(p for p in analysis["phases"] if p not in order)


def write_report(results_dir: Path, study: str, analysis: dict[str, Any]) -> dict[str, Any]:
    """report.md, report.html and the figures from an analysed study (analyze_study's result)."""
    study_dir = results_dir / study
    phases = _phases(analysis)
    all_runs = [run for phase in phases for run in analysis["phases"][phase].get("runs") or []]
    figure_dir = study_dir / "figures"
    figures = {phase: figs.phase_figures(phase, analysis["phases"][phase].get("runs") or [], figure_dir)
               for phase in phases if analysis["phases"][phase].get("runs")}
    blocks: list[Block] = header_blocks(study, all_runs)
    for phase in phases:
        blocks += phase_blocks(phase, analysis["phases"][phase], figures.get(phase, []))
    blocks += consistency_blocks(analysis.get("consistency") or {}, all_runs)
    blocks += gate_blocks(*load_gate_decisions(study_dir))
    blocks += cost_blocks(study_dir, phases, analysis)
    blocks += methods_blocks(load_manifests(results_dir, study, all_runs), all_runs, analysis.get("settings") or {})
    blocks += warning_blocks(analysis.get("warnings") or [])
    study_dir.mkdir(parents=True, exist_ok=True)
    md_path, html_path = study_dir / "report.md", study_dir / "report.html"
    md_path.write_text(render_md(blocks, study_dir), encoding="utf-8")
    html_path.write_text(render_html(blocks, f"Study report: {study}"), encoding="utf-8")
    paths = [str(p) for files in figures.values() for f in files for p in (f.svg, f.png)]
    return {"reportMd": str(md_path), "reportHtml": str(html_path), "figures": paths}


def build_report(results_dir: Path, study: str) -> dict[str, Any]:
    from .packet import analyze_study  # late: the packet module imports this one to write the report

    # analyze_study reads analysis-settings.json itself: the settings, phase order and run choices `packet` used.
    return write_report(results_dir, study, analyze_study(results_dir, study))


def main_report(stdin_text: str) -> dict[str, Any]:
    try:
        request = json.loads(stdin_text)
    except json.JSONDecodeError as exc:
        raise AnalysisError(f"stdin is not valid JSON: {exc}") from exc
    if not isinstance(request, dict) or not isinstance(request.get("resultsDir"), str) \
            or not isinstance(request.get("study"), str) or not request["resultsDir"] or not request["study"]:
        raise AnalysisError('report expects {"resultsDir": "...", "study": "..."} on stdin')
    return build_report(Path(request["resultsDir"]), str(request["study"]))
