"""Shared fixtures for the analysis tests: native run folders written from rows, and a tiny dataset with commit pairs.

    write_run(results, rows=[(id, label, prediction), (id, label, None, "length"), (id, 1, None, None, "timeout")],
              phase="phase2a", model=INSTRUCT, prompt="zero-shot", manifest={"pod": {"gpuTypeId": "X"}},
              metrics={"energy": {"gpu_kwh": 0.2}})

writes results/<study>/<phase>/<modelSlug>/<prompt>/<runId>/ with manifest.json (a complete native manifest, deep-merged
with `manifest`), predictions.jsonl (native record shape) and metrics.json (harness schemaVersion 1, deep-merged with
`metrics`; `metrics=None` writes none). `dataset_file(path)` writes DATASET_ROWS as a VulTrial-style JSONL.
"""

from __future__ import annotations

import copy
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # `import analysis` from any working directory

STUDY = "rq1-test"
INSTRUCT = "Qwen/Qwen3-30B-A3B-Instruct-2507"
THINKING = "Qwen/Qwen3-30B-A3B-Thinking-2507"
SHA_ZERO = "a" * 64
SHA_FEW = "b" * 64
SHA_EXAMPLES = "c" * 64
Row = Sequence[Any]  # (id, label, prediction[, finish_reason[, error]])

# id, target, commit_id: commits c1..c6 hold one vulnerable and one benign function; c7 two vulnerable and one
# benign (one pair, the second vulnerable is unpaired); 90 has no commit; 5 is repeated (the first row wins).
DATASET_ROWS: list[tuple[Any, int, str | None]] = [
    (1, 1, "c1"), (2, 0, "c1"), (3, 1, "c2"), (4, 0, "c2"), (5, 1, "c3"), (6, 0, "c3"),
    (7, 1, "c4"), (8, 0, "c4"), (9, 1, "c5"), (10, 0, "c5"), (11, 1, "c6"), (12, 0, "c6"),
    (13, 1, "c7"), (14, 1, "c7"), (15, 0, "c7"), (90, 0, None), (5, 0, "c9"),
]


def dataset_file(path: Path, rows: Sequence[tuple[Any, int, str | None]] | None = None) -> Path:
    lines = []
    for idx, target, commit in rows if rows is not None else DATASET_ROWS:
        row: dict[str, Any] = {"idx": idx, "project": "p", "target": target,
                               "func": f"int f{idx}(void) {{ return 0; }}"}
        if commit is not None:
            row["commit_id"] = commit
        lines.append(json.dumps(row))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def deep_merge(base: dict[str, Any], over: dict[str, Any] | None) -> dict[str, Any]:
    """`over` wins; nested dicts merge; a None value in `over` replaces (so a field can be nulled)."""
    out = copy.deepcopy(base)
    for key, value in (over or {}).items():
        out[key] = deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) \
            else copy.deepcopy(value)
    return out


def slug(repo_id: str) -> str:
    return repo_id.split("/")[-1]


def native_manifest(study: str, phase: str, model: str, prompt: str, run_id: str, thinking: bool) -> dict[str, Any]:
    """A complete native RunManifest (src/activities/results/types.ts) on one H100, simulated."""
    return {
        "schemaVersion": 1, "simulated": True, "study": study, "phase": phase,
        "model": {"repoId": model, "revision": "main", "commitSha": "0" * 40, "thinking": thinking,
                  "reasoningParser": "deepseek_r1" if thinking else None},
        "prompt": {"name": prompt, "templateSha256": SHA_FEW if prompt == "few-shot" else SHA_ZERO,
                   "fewShotSha256": SHA_EXAMPLES if prompt == "few-shot" else None},
        "datasetSha256": None, "runId": run_id, "workflowId": f"study-{study}--{phase}--{slug(model)}",
        "pod": {"provider": "runpod", "podId": "pod1", "gpuTypeId": "NVIDIA H100 80GB HBM3", "gpuCount": 1,
                "dataCenterId": "US-KS-2", "cloud": "SECURE", "image": "runpod/pytorch:1.0.2", "costPerHr": 2.5},
        "candidatesTried": [],
        "vllm": {"version": "0.11.0", "dtype": "bfloat16", "maxModelLen": 32768, "maxNumSeqs": 16,
                 "maxNumBatchedTokens": 8192, "seed": 0, "gpuMemoryUtilization": 0.9, "enablePrefixCaching": False,
                 "port": 8000, "startupTimeoutMs": 120000, "tensorParallelSize": 1, "reportedVersion": "0.11.0",
                 "commandLine": f"vllm serve {model} --dtype bfloat16 --seed 0", "loadTimeMs": 1000},
        "sampling": ({"temperature": 0.6, "topP": 0.95, "topK": 20, "minP": 0, "maxTokens": 24576, "seed": 1234}
                     if thinking else
                     {"temperature": 0.7, "topP": 0.8, "topK": 20, "minP": 0, "maxTokens": 16384, "seed": 1234}),
        "harness": {"concurrency": 16, "baselineSeconds": 60, "requestTimeoutS": 900, "limit": None,
                    "interruptionPolicy": "restart", "maxInterruptions": 2},
        "codecarbon": {"countryIsoCode": "USA", "measurePowerSecs": 1, "trackingMode": "machine"},
        "environment": None,
        "timings": {"sessionStartedAt": "2026-01-01T00:00:00.000Z", "inferenceMs": 3_600_000,
                    "finishedAt": "2026-01-01T02:00:00.000Z"},
        "cost": {"podCostSoFarUsd": 5.0, "note": "whole session"},
        "download": {}, "interruptions": [],
        "hardware": {"versions": {"vllm": "0.11.0", "vllmPackage": "0.11.0", "torch": "2.8.0", "cudaRuntime": "12.8",
                                  "cudaDriver": "12.8", "nvidiaDriver": "570.1", "codecarbon": "2.7.1",
                                  "huggingfaceHub": None, "hfXet": None, "python": "3.11"},
                     "gpu": {"present": True, "count": 1, "name": "NVIDIA H100 80GB HBM3", "memoryTotalMiB": 81559,
                             "powerLimitW": 700},
                     "note": None},
        "energy": {"comparable": True, "reasons": []},
    }


def harness_metrics(n: int, completion_tokens: int) -> dict[str, Any]:
    """metrics.json's energy part (the classification part is recomputed by the analysis, so left out)."""
    return {
        "schemaVersion": 1, "n": n,
        "tokens": {"prompt": 100 * n, "completion": completion_tokens, "total": 100 * n + completion_tokens},
        "durations_s": {"baseline": 60.0, "inference": 100.0},
        "energy": {"gpu_kwh": 0.2, "cpu_kwh": 0.05, "ram_kwh": 0.01, "total_kwh": 0.26,
                   "gpu_kwh_net_of_baseline": 0.1, "nvml_gpu_kwh": 0.19, "nvml_gpu_kwh_net_of_baseline": 0.09,
                   "baseline_gpu_power_w": 100.0, "complete": True, "attempts": 1, "measured_samples": n},
        "energy_estimates": {"cpu": True, "ram": True, "gpu": False},
        "gpu_present": True,
    }


def prediction_records(rows: Sequence[Row]) -> list[dict[str, Any]]:
    records = []
    for row in rows:
        sample_id, label, prediction = row[0], row[1], row[2]
        finish = row[3] if len(row) > 3 else ("stop" if prediction is not None else "stop")
        error = row[4] if len(row) > 4 else None
        records.append({"id": sample_id, "label": label, "prediction": prediction, "parsed": prediction is not None,
                        "finish_reason": None if error else finish, "prompt_tokens": 100,
                        "completion_tokens": None if error else 10, "latency_ms": None if error else 50.0,
                        "error": error})
    return records


def write_run(results: Path, rows: Sequence[Row], *, study: str = STUDY, phase: str = "phase2a",
              model: str = INSTRUCT, prompt: str = "zero-shot", run_id: str | None = None,
              thinking: bool | None = None, manifest: dict[str, Any] | None = None,
              metrics: dict[str, Any] | None | bool = True, torn_tail: str | None = None) -> Path:
    """A native run folder from rows; returns its path. `metrics=True`: default metrics.json; a dict: merged into it;
    None/False: no metrics.json. `torn_tail`: text appended without a newline (a torn last line)."""
    thinking = ("Thinking" in model) if thinking is None else thinking
    run_id = run_id or f"run-{phase}-{slug(model)}-{prompt}"
    path = results / study / phase / slug(model) / prompt / run_id
    path.mkdir(parents=True, exist_ok=True)
    records = prediction_records(rows)
    body = "".join(json.dumps(r) + "\n" for r in records) + (torn_tail or "")
    (path / "predictions.jsonl").write_text(body, encoding="utf-8")
    full = deep_merge(native_manifest(study, phase, model, prompt, run_id, thinking), manifest)
    (path / "manifest.json").write_text(json.dumps(full, indent=2), encoding="utf-8")
    if metrics:
        n = len({r["id"] for r in records})
        tokens = sum(r["completion_tokens"] or 0 for r in records)
        content = deep_merge(harness_metrics(n, tokens), metrics if isinstance(metrics, dict) else None)
        (path / "metrics.json").write_text(json.dumps(content, indent=2), encoding="utf-8")
    return path


@pytest.fixture
def results(tmp_path: Path) -> Path:
    root = tmp_path / "results"
    root.mkdir()
    return root


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    return dataset_file(tmp_path / "dataset.jsonl")
