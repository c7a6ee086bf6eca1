"""spec.json (schemaVersion 1): parsed and checked up front, so a bad spec fails before any measurement."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import SCHEMA_VERSION


# CodeCarbon samples power no faster than this (MIN_MEASURE_POWER_SECS in src/shared/constants.ts: the same rule).
MIN_MEASURE_POWER_SECS = 0.1


class SpecError(ValueError):
    pass


@dataclass(frozen=True)
class Sampling:
    temperature: float
    top_p: float
    top_k: int
    min_p: float
    max_tokens: int
    seed: int


@dataclass(frozen=True)
class CodecarbonSettings:
    country_iso_code: str
    measure_power_secs: float
    tracking_mode: str


@dataclass(frozen=True)
class Spec:
    run_id: str
    base_url: str
    served_model_name: str
    dataset_path: Path
    prompt_template_path: Path
    few_shot_path: Path | None
    output_dir: Path
    sampling: Sampling
    concurrency: int
    thinking: bool
    codecarbon: CodecarbonSettings
    baseline_seconds: float
    request_timeout_s: float
    limit: int | None
    # NVML indices of the GPUs this run owns (the team's shared server: one of four); None = every GPU on the pod.
    gpu_indices: tuple[int, ...] | None = None


def _get(obj: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str = "spec") -> Any:
    if key not in obj:
        raise SpecError(f"{where}.{key} is missing")
    value = obj[key]
    # bool is an int subclass; a JSON true must not pass as a number
    if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        raise SpecError(f"{where}.{key} must be {kind}, got a boolean")
    if not isinstance(value, kind):
        raise SpecError(f"{where}.{key} must be {kind}, got {type(value).__name__}")
    return value


def _number(obj: dict[str, Any], key: str, where: str, minimum: float) -> float:
    value = float(_get(obj, key, (int, float), where))
    if value < minimum:
        raise SpecError(f"{where}.{key} must be >= {minimum}, got {value}")
    return value


def _int(obj: dict[str, Any], key: str, where: str, minimum: int) -> int:
    value = _get(obj, key, int, where)
    if value < minimum:
        raise SpecError(f"{where}.{key} must be >= {minimum}, got {value}")
    return int(value)


def parse_codecarbon(cc: dict[str, Any]) -> CodecarbonSettings:
    """The spec's `codecarbon` object (also checked by harness.check before a pod is rented)."""
    tracking_mode = _get(cc, "trackingMode", str, "spec.codecarbon")
    if tracking_mode not in ("machine", "process"):
        raise SpecError(f"spec.codecarbon.trackingMode must be 'machine' or 'process', got {tracking_mode!r}")
    return CodecarbonSettings(
        country_iso_code=_get(cc, "countryIsoCode", str, "spec.codecarbon"),
        measure_power_secs=_number(cc, "measurePowerSecs", "spec.codecarbon", MIN_MEASURE_POWER_SECS),
        tracking_mode=tracking_mode,
    )


def parse_spec(raw: Any) -> Spec:
    if not isinstance(raw, dict):
        raise SpecError("spec must be a JSON object")
    if raw.get("schemaVersion") != SCHEMA_VERSION:
        raise SpecError(f"spec.schemaVersion must be {SCHEMA_VERSION}, got {raw.get('schemaVersion')!r}")
    sampling = _get(raw, "sampling", dict)
    codecarbon = parse_codecarbon(_get(raw, "codecarbon", dict))
    few_shot = raw.get("fewShotPath")
    limit = raw.get("limit")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise SpecError(f"spec.limit must be null or an integer >= 1, got {limit!r}")
    if few_shot is not None and not isinstance(few_shot, str):
        raise SpecError("spec.fewShotPath must be null or a string")
    gpu_indices = raw.get("gpuIndices")
    if gpu_indices is not None and (not isinstance(gpu_indices, list) or not gpu_indices or not all(
            isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in gpu_indices)):
        raise SpecError(f"spec.gpuIndices must be null or a non-empty list of GPU indices, got {gpu_indices!r}")
    run_id = _get(raw, "runId", str)
    if not run_id:
        raise SpecError("spec.runId must not be empty")
    return Spec(
        run_id=run_id,
        base_url=_get(raw, "baseUrl", str).rstrip("/"),
        served_model_name=_get(raw, "servedModelName", str),
        dataset_path=Path(_get(raw, "datasetPath", str)),
        prompt_template_path=Path(_get(raw, "promptTemplatePath", str)),
        few_shot_path=Path(few_shot) if few_shot else None,
        output_dir=Path(_get(raw, "outputDir", str)),
        sampling=Sampling(
            temperature=_number(sampling, "temperature", "spec.sampling", 0),
            top_p=_number(sampling, "topP", "spec.sampling", 0),
            top_k=int(_get(sampling, "topK", int, "spec.sampling")),  # vLLM takes -1 or 0 as "off"
            min_p=_number(sampling, "minP", "spec.sampling", 0),
            max_tokens=_int(sampling, "maxTokens", "spec.sampling", 1),
            seed=int(_get(sampling, "seed", int, "spec.sampling")),
        ),
        concurrency=_int(raw, "concurrency", "spec", 1),
        thinking=_get(raw, "thinking", bool),
        codecarbon=codecarbon,
        baseline_seconds=_number(raw, "baselineSeconds", "spec", 0),
        request_timeout_s=_number(raw, "requestTimeoutS", "spec", 1),
        limit=limit,
        gpu_indices=tuple(gpu_indices) if gpu_indices is not None else None,
    )


def load_spec(path: Path) -> Spec:
    try:
        raw = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise SpecError(f"cannot read spec {path}: {exc}") from exc
    return parse_spec(raw)
