"""Per-run metrics against hand-computed values: classification, edge cases, pairs, energy, loading and selection."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from analysis import AnalysisError
from analysis.metrics import classification, energy_summary, pair_metrics
from analysis.runs import load_run, read_dataset_samples, read_predictions, select_runs, write_samples
from analysis.tests.conftest import INSTRUCT, STUDY, prediction_records, write_run


def test_confusion_metrics_by_hand() -> None:
    # Vulnerable 1-5: 1-3 right (tp=3), 4 said benign, 5 truncated without an answer -> fn=2.
    # Benign 6-10: 6 a request error (scored wrong -> fp=1), 7-10 right (tn=4).
    # precision 3/4, recall 3/5, F1 = 2*3/(2*3+1+2) = 6/9; benign F1 = 2*4/(2*4+2+1) = 8/11;
    # macro-F1 = (6/9 + 8/11)/2 = 23/33; MCC = (3*4 - 1*2)/sqrt(4*5*5*6) = 10/sqrt(600); accuracy 7/10.
    rows = [(1, 1, 1), (2, 1, 1), (3, 1, 1), (4, 1, 0), (5, 1, None, "length"),
            (6, 0, None, None, "timeout"), (7, 0, 0), (8, 0, 0), (9, 0, 0), (10, 0, 0)]
    m = classification(prediction_records(rows))
    assert m["confusion"] == {"tp": 3, "fp": 1, "tn": 4, "fn": 2}
    assert m["accuracy"] == pytest.approx(0.7)
    assert m["precision"] == pytest.approx(0.75)
    assert m["recall"] == m["recallVulnerable"] == pytest.approx(0.6)
    assert m["recallBenign"] == pytest.approx(0.8)
    assert m["f1"] == pytest.approx(6 / 9)
    assert m["macroF1"] == pytest.approx(23 / 33)
    assert m["mcc"] == pytest.approx(10 / 600 ** 0.5)
    assert (m["unparseable"], m["truncated"], m["requestErrors"]) == (2, 1, 1)
    assert "wrong" in m["scoring"]


def test_all_unparseable_is_all_wrong() -> None:
    m = classification(prediction_records([(1, 1, None), (2, 1, None), (3, 0, None), (4, 0, None)]))
    assert m["confusion"] == {"tp": 0, "fp": 2, "tn": 0, "fn": 2}
    assert (m["accuracy"], m["precision"], m["recall"], m["f1"], m["macroF1"]) == (0, 0, 0, 0, 0)
    assert m["mcc"] == pytest.approx(-1.0)  # (0*0 - 2*2)/sqrt(2*2*2*2): every answer the opposite
    assert m["unparseable"] == 4


def test_absent_class_gives_zero_not_nan() -> None:
    # No vulnerable sample: precision, recall, F1 have a 0 denominator -> 0; MCC undefined -> 0.
    m = classification(prediction_records([(1, 0, 0), (2, 0, 0), (3, 0, 0)]))
    assert (m["precision"], m["recall"], m["f1"], m["mcc"]) == (0, 0, 0, 0)
    assert m["accuracy"] == 1.0 and m["recallBenign"] == 1.0
    assert m["macroF1"] == pytest.approx(0.5)  # (0 + benign F1 1) / 2


def test_single_sample() -> None:
    m = classification(prediction_records([(7, 1, 1)]))
    assert (m["accuracy"], m["precision"], m["recall"], m["f1"]) == (1, 1, 1, 1)
    assert m["mcc"] == 0  # (tn+fp)(tn+fn) = 0: undefined -> 0
    assert m["macroF1"] == pytest.approx(0.5)


def test_pairs_by_hand(dataset: Path) -> None:
    samples = read_dataset_samples(dataset)["samples"]
    rows = [(1, 1, 1), (2, 0, 0),            # c1 correct
            (3, 1, 1), (4, 0, 1),            # c2 both vulnerable
            (5, 1, 0), (6, 0, 0),            # c3 both benign
            (7, 1, 0), (8, 0, 1),            # c4 reversed
            (9, 1, None), (10, 0, 0),        # c5 unparseable vulnerable -> said benign: both benign
            (11, 1, 1),                      # c6 benign 12 not in the run: no pair
            (13, 1, 1), (14, 1, 0), (15, 0, 0),  # c7: 13 pairs with 15 (correct); 14 unpaired
            (90, 0, 0)]                      # no commit
    p = pair_metrics(prediction_records(rows), samples)
    assert p is not None
    assert (p["commits"], p["pairs"]) == (6, 6)
    assert (p["correct"], p["bothVulnerable"], p["bothBenign"], p["reversed"]) == (2, 1, 2, 1)
    assert p["shares"]["correct"] == pytest.approx(2 / 6)
    assert pair_metrics(prediction_records(rows), None) is None


def test_predictions_torn_line_and_duplicates(results: Path) -> None:
    path = write_run(results, [(1, 1, 1), (2, 0, 0), (1, 1, 0)], torn_tail='{"id": 3, "label"')
    records, duplicates = read_predictions(path / "predictions.jsonl")
    assert [r["id"] for r in records] == [1, 2]
    assert records[0]["prediction"] == 1  # the first record of id 1 counts
    assert duplicates == [1]
    (path / "predictions.jsonl").write_text('{"id": 1, "label": 1}\nnot json\n', encoding="utf-8")
    with pytest.raises(AnalysisError, match=":2 is not valid JSON"):
        read_predictions(path / "predictions.jsonl")


def test_energy_from_metrics_json(results: Path) -> None:
    run = load_run(results, write_run(results, [(1, 1, 1), (2, 0, 0), (3, 1, 0), (4, 0, 0)]))
    e = energy_summary(run)
    # 4 samples x 10 completion tokens = 40 tokens in 100 s; gross 0.2 kWh, net 0.1 kWh, total 0.26 kWh.
    assert e["source"] == "metrics.json"
    assert (e["gpuKwh"], e["gpuKwhNet"], e["nvmlGpuKwh"], e["nvmlGpuKwhNet"]) == (0.2, 0.1, 0.19, 0.09)
    assert e["perSample"] == pytest.approx({"gpuKwh": 0.05, "gpuKwhNet": 0.025, "totalKwh": 0.065})
    assert e["perOutputToken"] == pytest.approx({"gpuKwh": 0.005, "gpuKwhNet": 0.0025, "totalKwh": 0.0065})
    assert e["tokensPerS"] == pytest.approx(0.4)
    assert (e["completionTokens"], e["inferenceS"]) == (40, 100.0)
    assert e["cpuEstimate"] is True and e["ramEstimate"] is True and e["comparable"] is True


def test_energy_without_gpu_is_null_not_zero(results: Path) -> None:
    nogpu = {"energy": {"gpu_kwh": None, "gpu_kwh_net_of_baseline": None, "nvml_gpu_kwh": None,
                        "nvml_gpu_kwh_net_of_baseline": None}}
    e = energy_summary(load_run(results, write_run(results, [(1, 1, 1)], metrics=nogpu)))
    assert e["gpuKwh"] is None and e["perSample"]["gpuKwh"] is None and e["perOutputToken"]["gpuKwhNet"] is None
    assert e["cpuKwh"] == 0.05
    incomplete = {"energy": {"complete": False}}
    e = energy_summary(load_run(results, write_run(results, [(1, 1, 1)], prompt="few-shot", metrics=incomplete)))
    assert e["gpuKwh"] == 0.2 and e["perSample"]["gpuKwh"] is None  # partial energy would understate per sample


def test_energy_from_emissions_csv(results: Path) -> None:
    path = write_run(results, [(1, 1, 1), (2, 0, 0)], metrics=None)
    header = "timestamp,duration,cpu_energy,gpu_energy,ram_energy,energy_consumed,gpu_count,gpu_model\n"
    (path / "emissions.csv").write_text(header + "t1,30,0.01,0.1,0.002,0.112,1,H100\n"
                                        "t2,10,0.02,0.3,0.001,0.321,1,H100\n", encoding="utf-8")
    e = energy_summary(load_run(results, path))
    assert e["source"] == "emissions.csv"
    assert e["gpuKwh"] == pytest.approx(0.4) and e["cpuKwh"] == pytest.approx(0.03)
    assert e["ramKwh"] == pytest.approx(0.003) and e["totalKwh"] == pytest.approx(0.433)
    assert e["inferenceS"] == pytest.approx(40) and e["tokensPerS"] == pytest.approx(20 / 40)
    assert e["gpuKwhNet"] is None and e["nvmlGpuKwh"] is None
    assert e["perSample"]["gpuKwh"] == pytest.approx(0.2)
    # CodeCarbon writes gpu_energy 0 for a GPU it never saw: that is no measurement.
    (path / "emissions.csv").write_text(header + "t1,30,0.01,0,0.002,0.012,0,\n", encoding="utf-8")
    assert energy_summary(load_run(results, path))["gpuKwh"] is None
    (path / "emissions.csv").unlink()
    e = energy_summary(load_run(results, path))
    assert (e["source"], e["totalKwh"], e["gpuKwh"], e["tokensPerS"]) == (None, None, None, None)
    assert e["comparable"] is False


def test_samples_json(results: Path, dataset: Path) -> None:
    content = write_samples(results, STUDY, dataset)
    written = json.loads((results / STUDY / "samples.json").read_text())
    assert written == content
    assert content["datasetSha256"] == hashlib.sha256(dataset.read_bytes()).hexdigest()
    assert content["duplicateIds"] == [5]
    ids = [s["id"] for s in content["samples"]]
    assert ids == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 90]  # dataset order, 5 once
    assert content["samples"][4] == {"id": 5, "label": 1, "commit": "c3"}  # the first row wins
    assert content["samples"][-1]["commit"] is None
    bad = dataset.with_name("bad.jsonl")
    bad.write_text('{"idx": 1, "target": 2}\n')
    with pytest.raises(AnalysisError, match="target"):
        write_samples(results, STUDY, bad)


def test_run_selection(results: Path) -> None:
    old = write_run(results, [(1, 1, 1)], run_id="old", manifest={"timings": {"finishedAt": "2026-01-01T01:00:00Z"}})
    new = write_run(results, [(1, 1, 0)], run_id="new", manifest={"timings": {"finishedAt": "2026-01-02T01:00:00Z"}})
    imported = write_run(results, [(1, 1, 1)], run_id="imported-1",
                         manifest={"imported": True, "timings": {"finishedAt": "2026-02-01T00:00:00Z"}})
    runs = [load_run(results, p) for p in (old, new, imported)]
    (chosen,) = select_runs(runs)
    assert chosen.run_id == "new"  # native beats imported even when the import is later
    assert chosen.superseded == sorted([runs[0].dir, runs[2].dir])
    (named,) = select_runs([load_run(results, p) for p in (old, new, imported)], {"phase2a": [runs[0].dir]})
    assert named.run_id == "old"
    (only,) = select_runs([load_run(results, imported)])
    assert only.imported and only.model == INSTRUCT
