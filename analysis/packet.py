"""`python -m analysis packet`: the decision packet of a phase (JSON on stdin, JSON on stdout)."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import SCHEMA_VERSION, AnalysisError
from .packet_md import packet_markdown
from .runs import Json, atomic_write_bytes, json_bytes, load_run, resolve_run_dir, sha256_bytes, write_samples
from .settings import normalise_settings, write_settings_file
from .study import analyze_study

__all__ = ["analyze_study", "build_packet", "main_packet", "parse_input"]

_FIELDS = {"resultsDir", "study", "phase", "phaseOrder", "datasetPath", "runDirs", "settings", "nextPhase", "spend",
           "simulated"}
_REQUIRED = ("resultsDir", "study", "phase", "phaseOrder", "datasetPath")


def _name(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value or "/" in value or "\\" in value or value in (".", ".."):
        raise AnalysisError(f"`{field}` must be a non-empty name without path separators, got {value!r}")
    return value


def parse_input(text: str) -> Json:
    """The packet request, checked: a clear AnalysisError naming the field for anything wrong."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise AnalysisError(f"stdin is not valid JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise AnalysisError("stdin must be a JSON object")
    unknown = sorted(set(raw) - _FIELDS)
    if unknown:
        raise AnalysisError(f"unknown field(s) {', '.join(unknown)} (allowed: {', '.join(sorted(_FIELDS))})")
    absent = [f for f in _REQUIRED if raw.get(f) is None]
    if absent:
        raise AnalysisError(f"missing field(s) {', '.join(absent)}")
    if not isinstance(raw["resultsDir"], str) or not raw["resultsDir"]:
        raise AnalysisError("`resultsDir` must be a path")
    results_dir = Path(raw["resultsDir"]).resolve()
    if not results_dir.is_dir():
        raise AnalysisError(f"resultsDir {results_dir} is not a folder")
    study, phase = _name(raw["study"], "study"), _name(raw["phase"], "phase")
    order = raw["phaseOrder"]
    if not isinstance(order, list) or not order or len(set(map(str, order))) != len(order):
        raise AnalysisError("`phaseOrder` must be a non-empty list of distinct phase ids")
    order = [_name(p, "phaseOrder[]") for p in order]
    if phase not in order:
        raise AnalysisError(f"phase {phase!r} is not in phaseOrder {order}")
    if not isinstance(raw["datasetPath"], str) or not raw["datasetPath"]:
        raise AnalysisError("`datasetPath` must be a path")
    run_dirs = raw.get("runDirs")
    if run_dirs is not None:
        if not isinstance(run_dirs, list) or not all(isinstance(d, str) and d for d in run_dirs):
            raise AnalysisError("`runDirs` must be a list of run folders (relative to resultsDir) or null")
        run_dirs = [_check_run_dir(results_dir, study, phase, d) for d in run_dirs]
    for field in ("nextPhase", "spend"):
        if raw.get(field) is not None and not isinstance(raw[field], dict):
            raise AnalysisError(f"`{field}` must be an object or null")
    if not isinstance(raw.get("simulated", False), bool):
        raise AnalysisError("`simulated` must be true or false")
    return {"resultsDir": results_dir, "study": study, "phase": phase, "phaseOrder": order,
            "datasetPath": Path(raw["datasetPath"]).resolve(), "runDirs": run_dirs,
            "settings": normalise_settings(raw.get("settings")), "nextPhase": raw.get("nextPhase"),
            "spend": raw.get("spend"), "simulated": raw.get("simulated", False)}


def _check_run_dir(results_dir: Path, study: str, phase: str, run_dir: str) -> str:
    """A named run must exist, load, and belong to the study's phase; returned relative to resultsDir."""
    path = resolve_run_dir(results_dir, run_dir)
    phase_dir = (results_dir / study / phase).resolve()
    if not path.is_relative_to(phase_dir):
        raise AnalysisError(f"runDirs entry {run_dir!r} is not under {study}/{phase}/")
    run = load_run(results_dir, path)
    if run.phase != phase:
        raise AnalysisError(f"runDirs entry {run_dir!r}: its manifest says phase {run.phase!r}, not {phase!r}")
    return run.dir


def build_packet(request: Json) -> tuple[Json, Json]:
    """(packet, the study analysis it came from); writes samples.json and analysis-settings.json first."""
    results_dir, study, phase = request["resultsDir"], request["study"], request["phase"]
    samples = write_samples(results_dir, study, request["datasetPath"])
    stored = write_settings_file(results_dir, study, request["settings"], request["phaseOrder"], phase,
                                 request["runDirs"])
    analysis = analyze_study(results_dir, study, request["settings"], phase_order=request["phaseOrder"],
                             run_dirs=stored["runDirs"])
    mine = analysis["phases"][phase]
    # Cross-phase comparisons live in their `to` phase; the packet of a `from` phase shows them too.
    cross = [c for p, v in analysis["phases"].items() if p != phase for c in v["comparisons"]
             if c["kind"] == "phase" and c["a"]["phase"] == phase]
    warnings = list(analysis["studyWarnings"]) + list(mine["warnings"])
    if samples["duplicateIds"]:
        warnings.append(f"{study}: the dataset repeats {len(samples['duplicateIds'])} id(s), the first row counts: "
                        f"{samples['duplicateIds'][:10]}")
    simulated = bool(request["simulated"]) or any(r["simulated"] for r in mine["runs"])
    if not request["simulated"] and simulated:
        warnings.append(f"{phase}: some runs are simulated though the request says simulated: false")
    packet = {
        "schemaVersion": SCHEMA_VERSION, "study": study, "phase": phase,
        "generatedAt": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "simulated": simulated, "runs": mine["runs"], "comparisons": mine["comparisons"] + cross,
        "consistency": analysis["consistency"], "decision": mine["decision"],
        "nextPhase": request["nextPhase"], "spend": request["spend"], "warnings": warnings,
    }
    return packet, analysis


def _report(results_dir: Path, study: str) -> str | None:
    """The study report (analysis.report, a sibling module); None, with a note on stderr, while it does not exist."""
    try:
        from .report import build_report
    except ModuleNotFoundError as exc:
        if exc.name not in ("analysis.report", f"{__package__}.report"):
            raise
        print("analysis packet: analysis.report is not available; no report written", file=sys.stderr)
        return None
    result = build_report(results_dir, study)
    path = result.get("reportMd") or result.get("reportPath") if isinstance(result, dict) else None
    return str(path) if path is not None else None


def main_packet(stdin_text: str) -> Json:
    request = parse_input(stdin_text)
    packet, analysis = build_packet(request)
    phase_dir = request["resultsDir"] / request["study"] / request["phase"]
    data = json_bytes(packet)
    json_path, md_path = phase_dir / "decision-packet.json", phase_dir / "decision-packet.md"
    atomic_write_bytes(json_path, data)
    atomic_write_bytes(md_path, packet_markdown(json.loads(data), request["settings"],
                                                   [r for v in analysis["phases"].values() for r in v["runs"]])
                       .encode("utf-8"))
    report_path = _report(request["resultsDir"], request["study"])
    return {"packet": json.loads(data), "packetSha256": sha256_bytes(data), "jsonPath": str(json_path),
            "mdPath": str(md_path), "reportPath": report_path}
