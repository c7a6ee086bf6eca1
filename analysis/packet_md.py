"""decision-packet.md: the packet for a person at the gate, recommendation first."""

from __future__ import annotations

from typing import Any

from .consistency import describe_confound
from .runs import Json


def num(x: Any, digits: int = 3) -> str:
    if x is None:
        return "n/a"
    return f"{x:.{digits}f}"


def kwh(x: Any) -> str:
    return "not measured" if x is None else f"{x:.4g}"


def pval(x: Any) -> str:
    if x is None:
        return "n/a"
    return f"{x:.2e}" if x < 0.001 else f"{x:.4f}"


def ci(pair: Any) -> str:
    return "n/a" if not pair else f"[{pair[0]:+.3f}, {pair[1]:+.3f}]"


def tags(item: Json) -> str:
    """Provenance labels, on every row where they hold."""
    out = [t for t in ("simulated", "imported") if item.get(t)]
    return "".join(f" [{t}]" for t in out)


def short(model: str) -> str:
    return model.split("/")[-1]


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    if not rows:
        return ["(none)", ""]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return [*lines, ""]


def _runs(packet: Json) -> list[str]:
    rows = []
    for r in packet["runs"]:
        m, e = r["metrics"], r["energy"]
        rows.append([short(r["model"]) + tags(r), r["prompt"], str(r["n"]), num(m["accuracy"]), num(m["precision"]),
                     num(m["recall"]), num(m["f1"]), num(m["mcc"]),
                     f"{m['unparseable']} / {m['truncated']} / {m['requestErrors']}",
                     kwh(e["perSample"]["gpuKwh"]), num(e["tokensPerS"], 1)])
    return _table(["model", "prompt", "n", "accuracy", "precision", "recall", "F1", "MCC",
                   "unparseable / truncated / errors", "GPU kWh per sample", "tokens/s"], rows)


def _comparisons(packet: Json, settings: Json, runs: dict[str, Json]) -> list[str]:
    kind = settings["decision"]["ciResampling"]
    conf = f"{settings['bootstrap']['confidence'] * 100:g}%"
    rows = []
    for c in packet["comparisons"]:
        mc, f1, acc = c["mcnemar"], c["f1"], c["accuracy"]
        labels = "".join(sorted({tags(runs[s["dir"]]) for s in (c["a"], c["b"]) if s["dir"] in runs}))
        rows.append([c["label"] + labels, str(c["nCommon"]), str(mc["b"]), str(mc["c"]), pval(mc["pValue"]),
                     pval(mc["pAdjusted"]),
                     f"{num(f1['diff'])} sample {ci(f1['ciSample'])} cluster {ci(f1['ciCluster'])}",
                     f"{num(acc['diff'])} {kind} {ci(acc['ciCluster'] if kind == 'cluster' else acc['ciSample'])}",
                     c["verdict"] or ""])
    return _table(["comparison (b vs a)", "n common", "b (a right, b wrong)", "c (a wrong, b right)", "p (McNemar)",
                   "p (Holm)", f"ΔF1 with {conf} CIs", f"Δaccuracy with {conf} CI", "verdict"], rows)


def _pairs(packet: Json) -> list[str]:
    rows = []
    for r in packet["runs"]:
        p = r["pairs"]
        if p is None:
            rows.append([short(r["model"]) + tags(r), r["prompt"], "no commit information", "", "", "", "", ""])
            continue
        s = p["shares"]
        rows.append([short(r["model"]) + tags(r), r["prompt"], str(p["commits"]), str(p["pairs"]),
                     *(f"{p[k]} ({num(s[k], 2)})" for k in ("correct", "bothVulnerable", "bothBenign", "reversed"))])
    return _table(["model", "prompt", "commits", "pairs", "correct", "both vulnerable", "both benign", "reversed"],
                  rows)


def _energy(packet: Json) -> list[str]:
    rows = []
    for r in packet["runs"]:
        e = r["energy"]
        rows.append([short(r["model"]) + tags(r), r["prompt"], e["source"] or "none", kwh(e["gpuKwh"]),
                     kwh(e["gpuKwhNet"]), kwh(e["nvmlGpuKwh"]),
                     kwh(e["cpuKwh"]) + (" (estimate)" if e["cpuEstimate"] and e["cpuKwh"] is not None else ""),
                     kwh(e["ramKwh"]) + (" (estimate)" if e["ramEstimate"] and e["ramKwh"] is not None else ""),
                     kwh(e["totalKwh"]), kwh(e["perSample"]["gpuKwhNet"]), kwh(e["perOutputToken"]["gpuKwh"]),
                     "yes" if e["comparable"] else "no", r["gpu"]])
    return _table(["model", "prompt", "source", "GPU kWh", "GPU kWh net of idle", "NVML GPU kWh", "CPU kWh",
                   "RAM kWh", "total kWh", "GPU kWh net per sample", "GPU kWh per output token", "comparable", "GPU"],
                  rows)


def _consistency(packet: Json) -> list[str]:
    rows = packet["consistency"]["rows"]
    confounds = [r for r in rows if r["status"] == "differs-confound"]
    declared = [r for r in rows if r["status"] == "differs-as-declared"]
    lines = [f"Over every selected run of the study ({len(rows[0]['values']) if rows else 0} runs), all phases.", ""]
    if confounds:
        lines += ["**Confounds** (differences not under study; they may explain part of a difference):", ""]
        lines += [f"- {describe_confound(r)}" for r in confounds] + [""]
    else:
        lines += ["No confound: every controlled variable is the same across runs.", ""]
    if declared:
        lines += ["Differs as declared (variables under study): " + ", ".join(r["variable"] for r in declared) + ".",
                  ""]
    return lines


def _next_phase(packet: Json) -> list[str]:
    nxt = packet.get("nextPhase")
    if not nxt:
        return ["No next phase: this is the study's last phase.", ""]
    lines = [f"**{nxt.get('id')}**: {nxt.get('description', '')}", ""]
    models = nxt.get("models") or []
    if models:
        lines.append("Models: " + ", ".join(f"{m.get('repoId')}{' (thinking)' if m.get('thinking') else ''}"
                                            for m in models) + ".")
        lines.append("")
    lines += _table(["GPU type", "count", "cloud", "data centers", "$/h"],
                    [[str(c.get("gpuTypeId")), str(c.get("gpuCount")), str(c.get("cloud")),
                      ", ".join(c.get("dataCenterIds") or []) or "any",
                      "unknown" if c.get("costPerHr") is None else f"{c['costPerHr']:.2f}"]
                     for c in nxt.get("candidates") or []])
    est = nxt.get("estimate") or {}
    if est:
        first = est.get("costUsdFirstCandidate")
        lines.append(f"Estimate: {est.get('sessions')} session(s) x {est.get('podHoursPerSession')} pod-hours; "
                     f"first candidate {'unknown' if first is None else f'${first:.2f}'}; range "
                     f"${num(est.get('costUsdLow'), 2)} to ${num(est.get('costUsdHigh'), 2)}. {est.get('basis', '')}")
    budget = nxt.get("budget")
    if budget:
        lines.append(f"Budget: phase ${budget.get('phaseUsd')}, per session ${budget.get('sessionEstimateUsd')}.")
    return [*lines, ""]


def _spend(packet: Json) -> list[str]:
    spend = packet.get("spend")
    if not spend:
        return ["Not given.", ""]
    lines = [f"Study so far: ${num(spend.get('studyUsd'), 2)}; this phase: ${num(spend.get('phaseUsd'), 2)}.", ""]
    lines += _table(["session (model)", "pod cost USD"],
                    [[str(s.get("model")), num(s.get("podCostUsd"), 4)] for s in spend.get("sessions") or []])
    return lines


def packet_markdown(packet: Json, settings: Json, all_runs: list[Json] | None = None) -> str:
    """The Markdown twin of decision-packet.json (same numbers, fewer digits). `all_runs`: every phase's run
    summaries, so a cross-phase comparison's other run is labelled too."""
    decision = packet["decision"]
    rec = decision["recommendation"]
    runs = {r["dir"]: r for r in [*(all_runs or []), *packet["runs"]]}
    title = f"# Decision packet: {packet['study']} / {packet['phase']}" + (" [simulated]" * bool(packet["simulated"]))
    lines = [title, "", f"Generated {packet['generatedAt']}.", "", "## Recommendation", "",
             f"**{rec['action'].upper()}** ({rec['basis']}): {rec['text']}", ""]
    for m in decision["perModel"]:
        lines.append(f"- **{m['model']}**: {m['verdict'] or 'no comparison'}. {m['why']}")
    lines += ["", f"Rule: {decision['rule']}", "", f"What 'clearly' means: {decision['definition']}", "",
              "## Runs", ""]
    lines += _runs(packet)
    lines += ["## Comparisons", "", "Difference = b - a. b: samples a got right and b got wrong; c: the reverse.", ""]
    lines += _comparisons(packet, settings, runs)
    lines += ["## Vulnerable/benign pairs of a commit", ""]
    lines += _pairs(packet)
    lines += ["## Energy", "", "One measurement per run: no interval. 'not measured' is no figure, never a zero.", ""]
    lines += _energy(packet)
    lines += ["## Consistency", ""]
    lines += _consistency(packet)
    lines += ["## Next phase", ""]
    lines += _next_phase(packet)
    lines += ["## Spend", ""]
    lines += _spend(packet)
    if packet["warnings"]:
        lines += ["## Warnings", ""] + [f"- {w}" for w in packet["warnings"]] + [""]
    return "\n".join(lines)
