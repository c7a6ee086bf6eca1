"""Analysis settings (the study's `analysis:` block): defaults, validation, analysis-settings.json."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from . import SCHEMA_VERSION, AnalysisError
from .runs import Json, atomic_write_bytes, json_bytes, read_json
from .stats import MIN_RESAMPLES

SETTINGS_FILE = "analysis-settings.json"

DEFAULT_SETTINGS: Json = {
    "decision": {"baselinePrompt": "zero-shot", "treatmentPrompt": "few-shot", "metric": "f1", "alpha": 0.05,
                 "requireCiExcludesZero": True, "ciResampling": "cluster", "multipleComparisons": "holm"},
    "bootstrap": {"resamples": 10_000, "seed": 20260101, "confidence": 0.95},
    "variablesUnderStudy": ["model", "prompt"],
    "crossPhase": [],
}
_CHOICES = {"metric": ("f1", "accuracy", "macroF1", "mcc"), "ciResampling": ("cluster", "sample"),
            "multipleComparisons": ("holm", "none")}


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _object(value: Any, where: str, allowed: set[str]) -> Json:
    if not isinstance(value, dict):
        raise AnalysisError(f"{where} must be an object")
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise AnalysisError(f"{where} has unknown field(s) {', '.join(unknown)} "
                            f"(allowed: {', '.join(sorted(allowed))})")
    return value


def normalise_settings(raw: Any) -> Json:
    """The settings with defaults filled in; a clear AnalysisError for any wrong field."""
    settings = copy.deepcopy(DEFAULT_SETTINGS)
    if raw is None:
        return settings
    raw = _object(raw, "settings", set(DEFAULT_SETTINGS))
    for block in ("decision", "bootstrap"):
        if raw.get(block) is not None:
            settings[block].update(_object(raw[block], f"settings.{block}", set(DEFAULT_SETTINGS[block])))
    for key in ("variablesUnderStudy", "crossPhase"):
        if raw.get(key) is not None:
            settings[key] = copy.deepcopy(raw[key])
    d, bs = settings["decision"], settings["bootstrap"]
    for key in ("baselinePrompt", "treatmentPrompt"):
        if not isinstance(d[key], str) or not d[key]:
            raise AnalysisError(f"settings.decision.{key} must be a non-empty string")
    if d["baselinePrompt"] == d["treatmentPrompt"]:
        raise AnalysisError("settings.decision.baselinePrompt and treatmentPrompt must differ")
    for key, choices in _CHOICES.items():
        if d[key] not in choices:
            raise AnalysisError(f"settings.decision.{key} must be one of {', '.join(choices)}, got {d[key]!r}")
    if not _is_number(d["alpha"]) or not 0 < d["alpha"] < 1:
        raise AnalysisError(f"settings.decision.alpha must be between 0 and 1, got {d['alpha']!r}")
    if not isinstance(d["requireCiExcludesZero"], bool):
        raise AnalysisError("settings.decision.requireCiExcludesZero must be true or false")
    if not _is_int(bs["resamples"]) or bs["resamples"] < MIN_RESAMPLES:
        raise AnalysisError(f"settings.bootstrap.resamples must be an integer of at least {MIN_RESAMPLES} "
                            f"(the study's rule), got {bs['resamples']!r}")
    if not _is_int(bs["seed"]) or bs["seed"] < 0:
        raise AnalysisError(f"settings.bootstrap.seed must be a non-negative integer, got {bs['seed']!r}")
    if not _is_number(bs["confidence"]) or not 0.5 < bs["confidence"] < 1:
        raise AnalysisError(f"settings.bootstrap.confidence must be between 0.5 and 1, got {bs['confidence']!r}")
    under = settings["variablesUnderStudy"]
    if not isinstance(under, list) or not all(isinstance(v, str) and v for v in under):
        raise AnalysisError("settings.variablesUnderStudy must be a list of variable names")
    cross = settings["crossPhase"]
    if not isinstance(cross, list):
        raise AnalysisError("settings.crossPhase must be a list of {from, to}")
    for i, pair in enumerate(cross):
        pair = _object(pair, f"settings.crossPhase[{i}]", {"from", "to"})
        if not all(isinstance(pair.get(k), str) and pair.get(k) for k in ("from", "to")):
            raise AnalysisError(f"settings.crossPhase[{i}] needs `from` and `to` phase ids")
    return settings


def read_settings_file(results_dir: Path, study: str) -> Json | None:
    """analysis-settings.json as written by `packet`: {schemaVersion, settings, phaseOrder, runDirs}; None if absent."""
    path = results_dir / study / SETTINGS_FILE
    if not path.exists():
        return None
    content = read_json(path, "analysis settings")
    if not isinstance(content, dict):
        raise AnalysisError(f"{path} is not a JSON object")
    return content


def write_settings_file(results_dir: Path, study: str, settings: Json, phase_order: list[str], phase: str,
                        run_dirs: list[str] | None) -> Json:
    """Keeps other phases' explicit run choices, so `report` later selects the same runs as each packet did."""
    previous = read_settings_file(results_dir, study) or {}
    chosen = dict(previous.get("runDirs") or {}) if isinstance(previous.get("runDirs"), dict) else {}
    if run_dirs is None:
        chosen.pop(phase, None)
    else:
        chosen[phase] = sorted(run_dirs)
    content = {"schemaVersion": SCHEMA_VERSION, "settings": settings, "phaseOrder": phase_order, "runDirs": chosen}
    atomic_write_bytes(results_dir / study / SETTINGS_FILE, json_bytes(content))
    return content
