"""`python -m analysis import`: a hand-checked predictions file, planted problems, mappings, idempotence, exit 2."""

from __future__ import annotations

import json
import subprocess
import sys
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from analysis import importer

REPO = Path(__file__).resolve().parents[2]
STUDY, PHASE = "imp-study", "phase2a"
MODEL = "Org/Some-Model 7B"  # the space must become '_' in the folder name

# Dataset: idx 1..13, odd idx vulnerable (1), even benign (0); idx 2k-1 and 2k share commit ck.
DATASET = [{"idx": i, "target": i % 2, "commit_id": f"c{(i + 1) // 2}", "func": f"int f{i}(void) {{ return {i}; }}"}
           for i in range(1, 14)]

# Hand-checked predictions (dataset label is the truth; `label` below is what the source file claims):
#   id  label  prediction  -> outcome
#   1   1      vulnerable     TP
#   2   0      benign         TN
#   3   1      yes            TP
#   4   1 (!)  1              FP   planted label mismatch: the dataset says 0
#   5   1      0              FN
#   6   0      false          TN
#   7   1      TRUE           TP
#   8   0      safe           TN
#   9   1      no             FN
#   10  0      1              FP
#   11  1      1              TP
#   12  0      maybe          FP   unparseable: scored wrong
#   3   1      no             --   planted duplicate: the first row of id 3 counts
#   999 1      1              --   planted unknown id
#   (13 absent)                    planted missing sample
# TP = 4 (1, 3, 7, 11), FP = 3 (4, 10, 12), TN = 3 (2, 6, 8), FN = 2 (5, 9); n = 12.
# accuracy = 7/12, precision = 4/7, recall = 4/6 = 2/3, F1 = 2TP / (2TP + FP + FN) = 8/13.
PREDICTIONS_CSV = """\
id,label,prediction
1,1,vulnerable
2,0,benign
3,1,yes
4,1,1
5,1,0
6,0,false
7,1,TRUE
8,0,safe
9,1,no
10,0,1
11,1,1
12,0,maybe
3,1,no
999,1,1
"""
EXPECTED = {"accuracy": Fraction(7, 12), "precision": Fraction(4, 7), "recall": Fraction(2, 3), "f1": Fraction(8, 13)}
CONFUSION = {"tp": 4, "fp": 3, "tn": 3, "fn": 2}

EMISSIONS_CSV = """\
timestamp,project_name,run_id,duration,emissions,emissions_rate,cpu_power,gpu_power,ram_power,cpu_energy,gpu_energy,\
ram_energy,energy_consumed,country_name,country_iso_code,gpu_count,gpu_model,codecarbon_version,tracking_mode
2025-01-01T00:00:00,ext,r1,100.0,0.001,0.00001,42.5,300.0,10.0,0.001,0.008,0.0003,0.0093,Sweden,SWE,1,NVIDIA A100-SXM4-80GB,\
2.3.4,machine
2025-01-01T00:02:00,ext,r2,50.0,0.0005,0.00001,42.5,300.0,10.0,0.0005,0.004,0.00015,0.00465,Sweden,SWE,1,\
NVIDIA A100-SXM4-80GB,2.3.4,machine
"""
METADATA = {"model": "Other/Overridden", "thinking": False, "prompt": "zero-shot",
            "gpu": {"name": "NVIDIA A100-SXM4-80GB", "count": 1},
            "versions": {"vllm": "0.6.3", "torch": "2.4.0", "cuda": "12.1", "nvidiaDriver": "550.54",
                         "codecarbon": "2.3.4"},
            "dataCenter": "on-prem", "notes": "run by a collaborator"}


def write_dataset(path: Path, rows: list[dict[str, Any]] = DATASET, blank_after: int | None = None) -> Path:
    lines = [json.dumps(r) for r in rows]
    if blank_after is not None:
        lines.insert(blank_after, "")  # a blank line shifts line numbers: the mapping must use physical lines
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def source_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "external"
    folder.mkdir()
    (folder / "predictions.csv").write_text(PREDICTIONS_CSV, encoding="utf-8")
    (folder / "emissions.csv").write_text(EMISSIONS_CSV, encoding="utf-8")
    (folder / "run-info.json").write_text(json.dumps(METADATA), encoding="utf-8")
    return folder


def run_import(tmp_path: Path, *paths: str | Path, extra: tuple[str, ...] = (),
               capsys: pytest.CaptureFixture[str] | None = None) -> tuple[int, dict[str, Any] | None]:
    dataset = tmp_path / "dataset.jsonl"
    if not dataset.exists():
        write_dataset(dataset)
    argv = [*map(str, paths), "--results-dir", str(tmp_path / "results"), "--study", STUDY,
            "--phase", PHASE, "--dataset", str(dataset), *extra]
    code = importer.main(argv)
    if capsys is None:
        return code, None
    out = capsys.readouterr().out
    return code, (json.loads(out) if code == 0 else None)


def test_hand_checked_csv_with_emissions_and_metadata(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, report = run_import(tmp_path, source_folder(tmp_path), extra=("--model", MODEL), capsys=capsys)
    assert code == 0 and report is not None
    problems = report["problems"]
    assert problems["duplicateIds"] == [3]
    assert problems["unknownIds"] == ["999"]
    assert problems["missingSamples"] == [13]
    assert problems["labelMismatches"] == [{"id": 4, "datasetLabel": 0, "sourceLabel": "1"}]
    assert problems["unparseable"] == [12]
    assert report["counts"]["imported"] == 12 and report["counts"]["inputRows"] == 14
    assert report["metrics"]["confusion"] == CONFUSION
    for key, value in EXPECTED.items():
        assert report["metrics"][key] == float(value), key

    run_dir = tmp_path / "results" / report["runDir"]
    assert run_dir.parent == tmp_path / "results" / STUDY / PHASE / "Some-Model_7B" / "zero-shot"
    assert run_dir.name == report["runId"] and run_dir.name.startswith("imported-") and len(run_dir.name) == 17
    assert (run_dir / "emissions.csv").read_text(encoding="utf-8") == EMISSIONS_CSV  # copied as is
    saved = json.loads((run_dir / "import-report.json").read_text(encoding="utf-8"))
    assert saved["problems"] == problems

    manifest = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["imported"] is True and manifest["simulated"] is False and manifest["schemaVersion"] == 1
    assert manifest["model"] == {"repoId": MODEL, "revision": None, "commitSha": None, "thinking": False,
                                 "reasoningParser": None}  # --model overrides the metadata's
    assert manifest["pod"]["provider"] == "imported" and manifest["pod"]["costPerHr"] == 0
    assert manifest["pod"]["gpuTypeId"] == "NVIDIA A100-SXM4-80GB" and manifest["pod"]["dataCenterId"] == "on-prem"
    assert manifest["hardware"]["versions"]["nvidiaDriver"] == "550.54"
    assert manifest["hardware"]["versions"]["cudaRuntime"] == "12.1"
    assert manifest["codecarbon"]["version"] == "2.3.4"
    imp = manifest["import"]
    assert imp["codecarbonVersion"] == "2.3.4" and imp["emissionsRows"] == 2
    assert imp["emissionsEnergyKwh"]["energy_consumed"] == pytest.approx(0.0093 + 0.00465)
    assert sorted(s["kind"] for s in imp["sources"]) == ["emissions", "metadata", "predictions"]
    assert imp["problems"]["missingSamples"] == [13]
    assert any("2 rows" in w for w in report["warnings"])

    records = [json.loads(line) for line in (run_dir / "predictions.jsonl").read_text().splitlines()]
    assert [r["id"] for r in records] == list(range(1, 13))
    first = records[3]  # id 4: scored with the dataset's label, the source's kept beside it
    assert first == {"id": 4, "label": 0, "prediction": 1, "parsed": True, "finish_reason": None,
                     "prompt_tokens": None, "completion_tokens": None, "latency_ms": None, "error": None,
                     "source_label": "1", "source_prediction": "1"}
    assert records[11]["prediction"] is None and records[11]["parsed"] is False


def test_imported_run_is_analysed_like_a_native_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from analysis.packet import analyze_study

    code, report = run_import(tmp_path, source_folder(tmp_path), extra=("--model", MODEL), capsys=capsys)
    assert code == 0 and report is not None
    analysis = analyze_study(tmp_path / "results", STUDY, None)
    runs = analysis["phases"][PHASE]["runs"]
    assert len(runs) == 1
    run = runs[0]
    assert run["imported"] is True and run["simulated"] is False and run["n"] == 12
    assert run["dir"] == report["runDir"]
    assert run["metrics"]["confusion"] == CONFUSION
    for key, value in EXPECTED.items():
        assert run["metrics"][key] == float(value), key
    assert run["metrics"]["unparseable"] == 1
    energy = run["energy"]
    assert energy["source"] == "emissions.csv"
    assert energy["totalKwh"] == pytest.approx(0.0093 + 0.00465)
    assert energy["gpuKwh"] == pytest.approx(0.012)


def test_reimport_is_idempotent(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = source_folder(tmp_path)
    code, first = run_import(tmp_path, folder, extra=("--model", MODEL), capsys=capsys)
    assert code == 0 and first is not None
    run_dir = tmp_path / "results" / first["runDir"]
    before = {p.name: p.read_bytes() for p in run_dir.iterdir()}
    code, second = run_import(tmp_path, folder, extra=("--model", MODEL), capsys=capsys)
    assert code == 0 and second is not None and second["runDir"] == first["runDir"]
    assert {p.name: p.read_bytes() for p in run_dir.iterdir()} == before
    assert len(list(run_dir.parent.iterdir())) == 1


def test_line_number_mapping(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # A blank line after the 4th row: the 5th sample (idx 5) is on physical line 6 of the dataset file.
    write_dataset(tmp_path / "dataset.jsonl", blank_after=4)
    preds = tmp_path / "by-line.csv"
    preds.write_text("line,answer\n1,1\n2,0\n6,1\n5,1\n40,0\n", encoding="utf-8")
    code, report = run_import(tmp_path, preds, capsys=capsys, extra=(
        "--model", "a/b", "--prompt", "few-shot", "--line-column", "line", "--prediction-column", "answer"))
    assert code == 0 and report is not None
    assert report["mapping"]["lineColumn"] == "line" and report["mapping"]["idColumn"] is None
    assert report["problems"]["unknownIds"] == ["5", "40"]  # line 5 is blank; line 40 does not exist
    records = [json.loads(x) for x in (tmp_path / "results" / report["runDir"] / "predictions.jsonl").read_text()
               .splitlines()]
    assert [(r["id"], r["prediction"]) for r in records] == [(1, 1), (2, 0), (5, 1)]
    assert report["mapping"]["labelColumn"] is None
    assert any("label column" in w for w in report["warnings"])


def test_jsonl_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    preds = tmp_path / "out.jsonl"
    rows = [{"idx": 1, "target": 1, "pred": True, "completion_tokens": 12},
            {"idx": 2, "target": 0, "pred": False, "completion_tokens": 7},
            {"idx": 3, "target": 1, "pred": None, "completion_tokens": "x"}]
    preds.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    code, report = run_import(tmp_path, preds, capsys=capsys, extra=(
        "--model", "a/b", "--prompt", "zero-shot", "--prediction-column", "pred"))
    assert code == 0 and report is not None
    assert report["mapping"]["idColumn"] == "idx" and report["mapping"]["labelColumn"] == "target"
    assert report["problems"]["unparseable"] == [3] and report["problems"]["invalidTokenCounts"] == [3]
    assert report["problems"]["missingSamples"] == list(range(4, 14))
    records = [json.loads(x) for x in (tmp_path / "results" / report["runDir"] / "predictions.jsonl").read_text()
               .splitlines()]
    assert [r["completion_tokens"] for r in records] == [12, 7, None]
    assert report["metrics"]["confusion"] == {"tp": 1, "fp": 0, "tn": 1, "fn": 1}


def test_unusable_input_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _ = run_import(tmp_path, tmp_path / "nope.csv", extra=("--model", "a/b", "--prompt", "p"))
    assert code == 2 and "no such file" in capsys.readouterr().err

    no_id = tmp_path / "predictions-noid.csv"
    no_id.write_text("sample,prediction\n1,1\n", encoding="utf-8")
    code, _ = run_import(tmp_path, no_id, extra=("--model", "a/b", "--prompt", "p"))
    err = capsys.readouterr().err
    assert code == 2 and "no id column" in err and "--line-column" in err

    ok = tmp_path / "predictions.csv"
    ok.write_text("id,prediction\n1,1\n", encoding="utf-8")
    (tmp_path / "dataset.jsonl").write_text("not json\n", encoding="utf-8")
    code, _ = run_import(tmp_path, ok, extra=("--model", "a/b", "--prompt", "p"))
    assert code == 2 and "dataset unreadable" in capsys.readouterr().err

    write_dataset(tmp_path / "dataset.jsonl")
    code, _ = run_import(tmp_path, ok)
    assert code == 2 and "no model" in capsys.readouterr().err
    assert not (tmp_path / "results").exists()


def test_help_runs_as_a_module() -> None:
    done = subprocess.run([sys.executable, "-m", "analysis", "import", "--help"], cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "--line-column" in done.stdout and "vulnerable/benign/safe" in done.stdout
