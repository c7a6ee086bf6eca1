"""The study report: sections, provenance labels, self-contained HTML, figures, gate decisions, methods, reruns."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from analysis import figures, importer
from analysis.report import build_report, main_report, methods_blocks, render_md
from analysis.runs import sha256_file, write_samples
from analysis.tests.conftest import DATASET_ROWS, INSTRUCT, REPO, dataset_file, native_manifest, write_run

STUDY = "rep-study"
OTHER = "Ext/Other-Model"
PACKET_SHA = "ab" * 32
SAMPLES = list(dict.fromkeys((idx, target) for idx, target, _ in DATASET_ROWS if idx != 5)) + [(5, 1)]
NO_GPU = {"hardware": {"gpu": {"present": False, "count": 0, "name": None, "memoryTotalMiB": None,
                               "powerLimitW": None}, "note": "nvidia-smi not found (sandbox)"}}
SANDBOX_ENERGY = {"energy": {"gpu_kwh": None, "gpu_kwh_net_of_baseline": None, "nvml_gpu_kwh": None,
                             "nvml_gpu_kwh_net_of_baseline": None, "baseline_gpu_power_w": None, "cpu_kwh": 0.004,
                             "ram_kwh": 0.001, "total_kwh": 0.005}, "gpu_present": False}


def rows(wrong: set[int], unparseable: set[int] = frozenset()) -> list[tuple[Any, ...]]:
    """(id, label, prediction[, finish_reason]) over the dataset: right except `wrong`; `unparseable` truncated."""
    return [(i, y, None, "length") if i in unparseable else (i, y, 1 - y if i in wrong else y) for i, y in SAMPLES]


def sandbox_run(results: Path, prompt: str, run_id: str, wrong: set[int], sha: str, finished_at: str,
                unparseable: set[int] = frozenset()) -> Path:
    manifest = {**NO_GPU, "study": STUDY, "datasetSha256": sha, "timings": {"finishedAt": finished_at}}
    return write_run(results, rows(wrong, unparseable), study=STUDY, model=INSTRUCT, prompt=prompt, run_id=run_id,
                     manifest=manifest, metrics=SANDBOX_ENERGY)


def make_study(tmp_path: Path) -> Path:
    """A simulated phase (zero-shot vs few-shot), an imported run, a superseded run, gate decisions and a cost."""
    results = tmp_path / "results"
    dataset = dataset_file(tmp_path / "dataset.jsonl")
    sha = sha256_file(dataset)
    sandbox_run(results, "zero-shot", "run-old", {1, 2}, sha, "2025-12-31T10:00:00Z")
    sandbox_run(results, "zero-shot", "run-zs", {1, 3, 5, 7, 2, 4, 6}, sha, "2026-01-01T10:00:00Z", {90})
    sandbox_run(results, "few-shot", "run-fs", {1, 4}, sha, "2026-01-01T11:00:00Z")
    write_samples(results, STUDY, dataset)
    ext = tmp_path / "ext"
    ext.mkdir()
    (ext / "predictions.csv").write_text("id,label,prediction\n" + "".join(
        f"{i},{y},{y}\n" for i, y in SAMPLES[:12]), encoding="utf-8")
    (ext / "emissions.csv").write_text(
        "duration,cpu_energy,gpu_energy,ram_energy,energy_consumed,gpu_count,gpu_model,codecarbon_version\n"
        "30.0,0.0006,0,0.0001,0.0007,,,2.7.1\n", encoding="utf-8")
    (ext / "meta.json").write_text(json.dumps({"versions": {"vllm": "0.11.0", "torch": "2.8.0", "cuda": "12.8",
                                                            "nvidiaDriver": "570.1", "codecarbon": "2.7.1"}}),
                                   encoding="utf-8")
    assert importer.main([str(ext), "--results-dir", str(results), "--study", STUDY, "--phase", "phase2a",
                          "--dataset", str(dataset), "--model", OTHER, "--prompt", "zero-shot"]) == 0
    (results / STUDY / "gate-decisions.json").write_text(json.dumps({"decisions": [
        {"gate": "phase2b", "afterPhase": "phase2a", "decision": "approve", "by": "Ada Lovelace",
         "reason": "few-shot helps; see http://example.invalid/notes", "at": "2026-01-02T09:00:00Z",
         "packetSha256": PACKET_SHA, "via": "update"}]}), encoding="utf-8")
    (results / STUDY / "phase2a" / "summary.json").write_text(json.dumps({"costUsd": {"phaseTotal": 1.2345}}),
                                                              encoding="utf-8")
    return results


@pytest.fixture()
def study(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    results = make_study(tmp_path)
    capsys.readouterr()  # the import's printed report
    return results


def test_report_sections_labels_and_files(study: Path) -> None:
    out = main_report(json.dumps({"resultsDir": str(study), "study": STUDY}))
    md = Path(out["reportMd"]).read_text(encoding="utf-8")
    for section in ("# Study report: rep-study", "## Phase phase2a", "### Runs", "### Paired comparisons",
                    "### Pair-wise metrics", "### Figures", "## Consistency of controlled variables",
                    "## Gate decisions", "## Cost", "## Methods"):
        assert section in md, section
    assert "**SIMULATED:" in md and "**IMPORTED:" in md
    assert "[SIMULATED, IMPORTED]" in md  # phase heading and figure titles

    # Every row of the main table names its provenance.
    runs_table = md.split("### Runs")[1].split("\n\n")[1].splitlines()[2:]
    assert len(runs_table) == 3
    assert sum("| simulated |" in row for row in runs_table) == 2
    assert sum("| imported |" in row for row in runs_table) == 1
    assert "not measured" in md  # no GPU energy in the sandbox runs
    assert "(est.)" in md
    assert "superseded runs, not analysed: rep-study/phase2a/Qwen3-30B-A3B-Instruct-2507/zero-shot/run-old" in md
    assert "few-shot-vs-zero-shot" in md or "few-shot" in md.split("### Paired comparisons")[1]

    # Gate decision with who, when, why and the packet's hash; cost from summary.json and the study total.
    assert "Ada Lovelace" in md and "2026-01-02T09:00:00Z" in md and PACKET_SHA in md and "few-shot helps" in md
    assert "$1.2345" in md and "study total" in md

    # Methods: the manifests' versions and settings, the baseline method, the statistics.
    methods = md.split("## Methods")[1]
    for text in ("vLLM 0.11.0", "torch 2.8.0", "CodeCarbon 2.7.1", "NVIDIA driver 570.1", "CUDA runtime 12.8",
                 "max model length", "32768", "tensor parallel size", "prefix caching", "off (", "concurrency",
                 "temperature 0.7", "top-p 0.8", "top-k 20", "max tokens 16384", "seed 1234", "60 seconds idle",
                 "mean idle GPU power", "exact McNemar", "10000 resamples", "seed 20260101", "Holm",
                 "imported from files made outside this tool"):
        assert text in methods, text
    # The imported run recorded no dtype nor GPU: said per run, never one value picked for all.
    imported = "(phase2a/Other-Model / zero-shot (imported))"
    assert f"dtype differing between runs: not recorded {imported}; bfloat16" in methods
    assert "CodeCarbon version 2.7.1 from 1 emissions row(s)" in methods

    # Figures: SVG and PNG for each.
    names = {Path(p).name for p in out["figures"]}
    for kind in ("quality-vs-energy", "energy-components", "tokens-per-second", "confusion"):
        assert f"phase2a-{kind}.svg" in names and f"phase2a-{kind}.png" in names
    for path in out["figures"]:
        assert Path(path).stat().st_size > 0
    quality = (study / STUDY / "figures" / "phase2a-quality-vs-energy.svg").read_text(encoding="utf-8")
    assert "total CodeCarbon energy per sample" in quality and "(simulated)" in quality and "(imported)" in quality


def test_html_is_self_contained(study: Path) -> None:
    out = build_report(study, STUDY)
    page = Path(out["reportHtml"]).read_text(encoding="utf-8")
    assert page.count("<svg") == 4 and "<style>" in page
    assert "<script" not in page and "<img" not in page and "<link" not in page and "<!DOCTYPE svg" not in page
    for attribute in re.findall(r'\b(?:src|href|xlink:href)\s*=\s*"([^"]*)"', page):
        assert attribute.startswith("#"), attribute  # only references inside the page
    assert "url(http" not in page
    assert "http://example.invalid/notes" in page  # text may mention a URL
    ids = re.findall(r'\bid="([^"]+)"', page)
    assert len(ids) == len(set(ids))  # figure ids made unique across inlined SVGs
    assert "SIMULATED" in page and "Ada Lovelace" in page


def test_regenerating_gives_the_same_bytes(study: Path) -> None:
    first = build_report(study, STUDY)
    md, page = Path(first["reportMd"]).read_bytes(), Path(first["reportHtml"]).read_bytes()
    svgs = {p: Path(p).read_bytes() for p in first["figures"] if p.endswith(".svg")}
    second = build_report(study, STUDY)
    assert Path(second["reportMd"]).read_bytes() == md
    assert Path(second["reportHtml"]).read_bytes() == page
    assert {p: Path(p).read_bytes() for p in second["figures"] if p.endswith(".svg")} == svgs


def test_no_gate_decisions_yet_and_no_summary(study: Path) -> None:
    (study / STUDY / "gate-decisions.json").unlink()
    (study / STUDY / "phase2a" / "summary.json").unlink()
    md = Path(build_report(study, STUDY)["reportMd"]).read_text(encoding="utf-8")
    assert "No gate decisions yet" in md
    assert "sum of" in md.split("## Cost")[1]  # falls back to the runs' own costs


def _run(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "dir": "s/p/m/zero-shot/r1", "phase": "p", "model": "org/m", "prompt": "zero-shot", "imported": False,
        "simulated": False, "n": 10, "metrics": {"f1": 0.5, "accuracy": 0.6,
                                                 "confusion": {"tp": 3, "fp": 2, "tn": 3, "fn": 2}},
        "energy": {"gpuKwh": 0.01, "cpuKwh": 0.002, "ramKwh": 0.001, "totalKwh": 0.013, "cpuEstimate": True,
                   "ramEstimate": True, "perSample": {"gpuKwh": 0.001, "gpuKwhNet": 0.0008, "totalKwh": 0.0013},
                   "tokensPerS": 250.0, "complete": True, "nvmlGpuKwh": 0.0099},
    }
    base.update(overrides)
    return base


def test_quality_figure_uses_gpu_energy_when_measured(tmp_path: Path) -> None:
    fig = figures.quality_vs_energy("p", [_run()], tmp_path, "q")
    svg = fig.svg.read_text(encoding="utf-8")
    assert "GPU energy per sample" in svg and "total CodeCarbon" not in svg
    assert fig.png.exists()


def test_figures_say_no_energy_measured(tmp_path: Path) -> None:
    bare = _run(energy={"perSample": {}, "tokensPerS": None})
    quality = figures.quality_vs_energy("p", [bare], tmp_path, "q")
    assert "no energy measured" in quality.svg.read_text(encoding="utf-8")
    assert "No energy measured" in quality.caption
    parts = figures.energy_components("p", [bare], tmp_path, "e")
    assert "no energy measured" in parts.svg.read_text(encoding="utf-8")
    tps = figures.tokens_per_second("p", [bare], tmp_path, "t")
    assert "not measured" in tps.svg.read_text(encoding="utf-8")


def test_methods_say_where_runs_differ() -> None:
    a, b = _run(), _run(dir="s/p/m/few-shot/r2", prompt="few-shot")
    ma = native_manifest(STUDY, "p", "org/m", "zero-shot", "r1", False)
    mb = native_manifest(STUDY, "p", "org/m", "few-shot", "r2", False)
    ma["hardware"]["versions"]["torch"] = "2.7.1+cu126"
    mb["sampling"]["temperature"] = 0.0
    settings = {"bootstrap": {"resamples": 10000, "seed": 7, "confidence": 0.95},
                "decision": {"multipleComparisons": "holm", "alpha": 0.05, "metric": "f1", "ciResampling": "cluster"}}
    text = render_md(methods_blocks([(a, ma), (b, mb)], [a, b], settings), Path("."))
    assert "torch differing between runs: 2.7.1+cu126 (p/m / zero-shot); 2.8.0 (p/m / few-shot)" in text
    assert "temperature differing between runs: 0.7 (p/m / zero-shot); 0.0 (p/m / few-shot)" in text
    assert "NVIDIA driver 570.1" in text and "1x NVIDIA H100 80GB HBM3" in text
    assert "NVML's energy counter cross-checked" in text
    assert "seed 7" in text and "Holm" in text


def test_main_report_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        main_report(json.dumps({"study": STUDY}))


def test_unreadable_gate_file_is_said(study: Path) -> None:
    (study / STUDY / "gate-decisions.json").write_text("{not json", encoding="utf-8")
    md = Path(build_report(study, STUDY)["reportMd"]).read_text(encoding="utf-8")
    assert "Gate decisions unreadable" in md and "No gate decisions yet" not in md


def test_report_command(study: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "analysis", "report"], cwd=REPO, capture_output=True, text=True,
                          input=json.dumps({"resultsDir": str(study), "study": STUDY}), timeout=300)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert Path(out["reportMd"]).exists() and Path(out["reportHtml"]).exists() and len(out["figures"]) == 8
