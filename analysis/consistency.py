"""The consistency matrix: every controlled variable over every selected run, and which differences are confounds."""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable
from typing import Any

from .runs import Json, Run

Getter = Callable[[Run], Any]


def _m(*keys: str) -> Getter:
    def get(run: Run) -> Any:
        value: Any = run.manifest
        for key in keys:
            if not isinstance(value, dict):
                return None
            value = value.get(key)
        return value
    return get


def _first(*getters: Getter) -> Getter:
    def get(run: Run) -> Any:
        return next((v for v in (g(run) for g in getters) if v is not None), None)
    return get


def quantization(run: Run) -> str | None:
    """`--quantization X` (or `-q X`, `--quantization=X`) from vLLM's command line; none when absent; null unknown."""
    line = _m("vllm", "commandLine")(run)
    if not isinstance(line, str) or not line.strip():
        return None
    try:
        words = shlex.split(line)
    except ValueError:
        words = line.split()
    for i, word in enumerate(words):
        if word.startswith("--quantization="):
            return word.split("=", 1)[1]
        if word in ("--quantization", "-q") and i + 1 < len(words):
            return words[i + 1]
    return "none"


def _model(run: Run) -> Any:
    model = run.manifest.get("model") or {}
    return {"repoId": model.get("repoId"), "thinking": model.get("thinking"), "sampling": run.manifest.get("sampling")}


def _prompt(run: Run) -> Any:
    prompt = run.manifest.get("prompt") or {}
    return {"name": prompt.get("name"), "templateSha256": prompt.get("templateSha256"),
            "fewShotSha256": prompt.get("fewShotSha256")}


# (variable, group, getter). Declared rows carry what is intrinsic to the thing under study (a model's sampling).
ROWS: list[tuple[str, str, Getter]] = [
    ("gpuModel", "hardware", _first(_m("hardware", "gpu", "name"), _m("pod", "gpuTypeId"))),
    ("gpuCount", "hardware", _first(_m("pod", "gpuCount"), _m("hardware", "gpu", "count"))),
    ("nvidiaDriver", "hardware", _m("hardware", "versions", "nvidiaDriver")),
    ("cudaRuntime", "hardware", _m("hardware", "versions", "cudaRuntime")),
    ("cudaDriver", "hardware", _m("hardware", "versions", "cudaDriver")),
    ("dataCenter", "hardware", _m("pod", "dataCenterId")),
    ("cloud", "hardware", _m("pod", "cloud")),
    ("image", "software", _m("pod", "image")),
    ("vllmVersion", "software", _first(_m("vllm", "reportedVersion"), _m("hardware", "versions", "vllm"))),
    ("torch", "software", _m("hardware", "versions", "torch")),
    ("codecarbonVersion", "software", _m("hardware", "versions", "codecarbon")),
    ("dtype", "settings", _m("vllm", "dtype")),
    ("quantization", "settings", quantization),
    ("tensorParallelSize", "settings", _m("vllm", "tensorParallelSize")),
    ("maxModelLen", "settings", _m("vllm", "maxModelLen")),
    ("maxNumSeqs", "settings", _m("vllm", "maxNumSeqs")),
    ("maxNumBatchedTokens", "settings", _m("vllm", "maxNumBatchedTokens")),
    ("concurrency", "settings", _m("harness", "concurrency")),
    ("prefixCaching", "settings", _m("vllm", "enablePrefixCaching")),
    ("vllmSeed", "settings", _m("vllm", "seed")),
    ("gpuMemoryUtilization", "settings", _m("vllm", "gpuMemoryUtilization")),
    ("codecarbonCountry", "settings", _m("codecarbon", "countryIsoCode")),
    ("measurePowerSecs", "settings", _m("codecarbon", "measurePowerSecs")),
    ("trackingMode", "settings", _m("codecarbon", "trackingMode")),
    ("baselineSeconds", "settings", _m("harness", "baselineSeconds")),
    ("datasetSha256", "data", _m("datasetSha256")),
    ("simulated", "provenance", lambda r: r.simulated),
    ("imported", "provenance", lambda r: r.imported),
    ("model", "declared", _model),
    ("prompt", "declared", _prompt),
]
# A declared row's identity: the same model (prompt) must carry the same value everywhere, else that is a confound.
_IDENTITY = {"model": "repoId", "prompt": "name"}


def _canon(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def _row(variable: str, group: str, runs: list[Run], values: dict[str, Any], under_study: set[str]) -> Json:
    distinct: list[Any] = []
    seen: set[str] = set()
    for run in runs:
        key = _canon(values[run.dir])
        if key not in seen:
            seen.add(key)
            distinct.append(values[run.dir])
    unknown = [r.dir for r in runs if values[r.dir] is None]
    notes: list[str] = []
    if unknown and len(unknown) < len(runs):
        notes.append(f"value unknown for {len(unknown)} run(s) ({', '.join(unknown)}): "
                     "null vs a value counts as a difference")
    elif unknown:
        notes.append("value unknown for every run")
    status, scope = "consistent", None
    if len(distinct) > 1:
        by_phase: dict[str, set[str]] = {}
        for run in runs:
            by_phase.setdefault(run.phase, set()).add(_canon(values[run.dir]))
        scope = "within-phase" if any(len(v) > 1 for v in by_phase.values()) else "across-phases"
        status = "differs-as-declared" if variable in under_study else "differs-confound"
        ident = _IDENTITY.get(variable)
        if status == "differs-as-declared" and ident:
            per_id: dict[Any, set[str]] = {}
            for run in runs:
                value = values[run.dir] or {}
                per_id.setdefault(value.get(ident), set()).add(_canon(value))
            clashing = sorted(str(k) for k, v in per_id.items() if len(v) > 1)
            if clashing:
                status = "differs-confound"
                notes.append(f"the same {variable} ({', '.join(clashing)}) ran with different settings")
        if status == "differs-as-declared":
            notes.append("varied on purpose (variablesUnderStudy)")
    return {"variable": variable, "group": group, "values": values, "distinct": distinct, "status": status,
            "scope": scope, "note": "; ".join(notes) or None}


def consistency(runs: list[Run], variables_under_study: list[str]) -> Json:
    """Consistency over `runs` (every selected run of the study). Rows follow ROWS; values are keyed by run dir."""
    ordered = sorted(runs, key=lambda r: r.dir)
    under_study = set(variables_under_study)
    rows = [_row(variable, group, ordered, {r.dir: getter(r) for r in ordered}, under_study)
            for variable, group, getter in ROWS]
    return {"rows": rows, "confounds": [r["variable"] for r in rows if r["status"] == "differs-confound"]}


def describe_confound(row: Json) -> str:
    """One line for the packet and the report: what differs, where, between which values."""
    shown = ", ".join("unknown" if v is None else (_canon(v) if isinstance(v, (dict, list)) else str(v))
                      for v in row["distinct"])
    where = "within a phase" if row["scope"] == "within-phase" else "across phases"
    return f"{row['variable']} ({row['group']}) differs {where}: {shown}" + (f" ({row['note']})" if row["note"] else "")

