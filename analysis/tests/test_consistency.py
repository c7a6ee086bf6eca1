"""The consistency matrix: declared differences, confounds within and across phases, unknown values."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from analysis.consistency import consistency, quantization
from analysis.runs import Run, load_run
from analysis.tests.conftest import INSTRUCT, THINKING, write_run

ROWS = [(1, 1, 1), (2, 0, 0)]
H200 = {"pod": {"gpuTypeId": "NVIDIA H200", "gpuCount": 4}, "hardware": {"gpu": {"name": "NVIDIA H200"}},
        "vllm": {"tensorParallelSize": 4}}


def _runs(results: Path, specs: list[dict[str, Any]]) -> list[Run]:
    return [load_run(results, write_run(results, ROWS, **spec)) for spec in specs]


def _rows(matrix: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["variable"]: r for r in matrix["rows"]}


def _study(results: Path) -> list[Run]:
    specs: list[dict[str, Any]] = [{"phase": "phase2a", "model": m, "prompt": p}
                                   for m in (INSTRUCT, THINKING) for p in ("zero-shot", "few-shot")]
    specs += [{"phase": "phase2b", "model": m.replace("30B-A3B", "235B-A22B"), "prompt": "zero-shot", "manifest": H200}
              for m in (INSTRUCT, THINKING)]
    return _runs(results, specs)


def test_declared_and_across_phase_confound(results: Path) -> None:
    matrix = consistency(_study(results), ["model", "prompt"])
    rows = _rows(matrix)
    assert rows["model"]["status"] == rows["prompt"]["status"] == "differs-as-declared"
    assert rows["model"]["group"] == "declared"
    assert len(rows["prompt"]["distinct"]) == 2
    for variable in ("gpuModel", "gpuCount", "tensorParallelSize"):
        assert rows[variable]["status"] == "differs-confound"
        assert rows[variable]["scope"] == "across-phases"
    assert rows["gpuModel"]["distinct"] == ["NVIDIA H100 80GB HBM3", "NVIDIA H200"]
    assert rows["concurrency"]["status"] == "consistent" and rows["concurrency"]["scope"] is None
    assert rows["quantization"]["distinct"] == ["none"]
    assert matrix["confounds"] == ["gpuModel", "gpuCount", "tensorParallelSize"]
    assert len(rows["gpuModel"]["values"]) == 6


def test_within_phase_confound(results: Path) -> None:
    runs = _runs(results, [{"prompt": "zero-shot"}, {"prompt": "few-shot", "manifest": {"harness": {"concurrency": 4}}},
                           {"phase": "phase2b", "prompt": "zero-shot"}])
    row = _rows(consistency(runs, ["model", "prompt"]))["concurrency"]
    assert (row["status"], row["scope"]) == ("differs-confound", "within-phase")
    assert sorted(row["distinct"]) == [4, 16]


def test_declaring_a_row_variable(results: Path) -> None:
    row = _rows(consistency(_study(results), ["model", "prompt", "gpuModel"]))["gpuModel"]
    assert row["status"] == "differs-as-declared"


def test_unknown_values_and_sampling_clash(results: Path) -> None:
    runs = _runs(results, [
        {"prompt": "zero-shot"},
        {"prompt": "few-shot", "run_id": "imported-1",
         "manifest": {"imported": True, "hardware": None, "vllm": {"commandLine": None}}},
        {"phase": "phase2b", "prompt": "zero-shot", "manifest": {"sampling": {"temperature": 0.1}}},
    ])
    rows = _rows(consistency(runs, ["model", "prompt"]))
    torch = rows["torch"]
    assert torch["status"] == "differs-confound" and None in torch["distinct"]
    assert "unknown" in torch["note"] and "imported-1" in torch["note"]
    assert rows["imported"]["status"] == "differs-confound"
    assert set(rows["quantization"]["distinct"]) == {"none", None}  # unknown without a command line
    # The same model ran with other sampling in phase2b: not a declared difference.
    assert rows["model"]["status"] == "differs-confound" and INSTRUCT in rows["model"]["note"]


def test_quantization_parse(results: Path) -> None:
    lines = {"a": "vllm serve m --quantization fp8 --dtype auto", "b": "vllm serve m --quantization=awq",
             "c": "vllm serve m -q gptq", "d": "vllm serve m --dtype bfloat16"}
    runs = _runs(results, [{"run_id": k, "manifest": {"vllm": {"commandLine": v}}} for k, v in lines.items()])
    assert [quantization(r) for r in runs] == ["fp8", "awq", "gptq", "none"]
