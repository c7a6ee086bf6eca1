"""`python -m analysis packet` end to end, and the packet's parts: selection, comparisons, left-out ids, warnings."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from analysis import AnalysisError, packet
from analysis.packet import analyze_study, main_packet
from analysis.tests.conftest import INSTRUCT, STUDY, THINKING, dataset_file, write_run

REPO = Path(__file__).resolve().parents[2]
BIG_INSTRUCT = "Qwen/Qwen3-235B-A22B-Instruct-2507"
# 60 commits, each a vulnerable function (odd id) and its benign fix (even id).
COMMITS = 60
ROWS = [(2 * k + 1 + j, 1 - j, f"c{k}") for k in range(COMMITS) for j in (0, 1)]


def predictions(right: Any) -> list[tuple[Any, ...]]:
    """Rows where the model is right on commit k when right(k)."""
    return [(i, y, y if right(c) else 1 - y) for i, y, c in [(i, y, int(c[1:])) for i, y, c in ROWS]]


ZERO = predictions(lambda k: k < 30)  # right on half the commits
FEW = predictions(lambda k: k != 0)  # right on all but one


def request(results: Path, dataset: Path, **over: Any) -> dict[str, Any]:
    body = {"resultsDir": str(results), "study": STUDY, "phase": "phase2a",
            "phaseOrder": ["phase1", "phase2a", "phase2b"], "datasetPath": str(dataset),
            "settings": {"crossPhase": [{"from": "phase2a", "to": "phase2b"}]},
            "nextPhase": {"id": "phase2b", "description": "235B",
                          "models": [{"repoId": BIG_INSTRUCT, "thinking": False}],
                          "candidates": [{"gpuTypeId": "NVIDIA H200", "gpuCount": 4, "cloud": "SECURE",
                                          "dataCenterIds": [], "costPerHr": 14.0}],
                          "estimate": {"podHoursPerSession": 10, "sessions": 2, "costUsdFirstCandidate": 280.0,
                                       "costUsdLow": 280.0, "costUsdHigh": 400.0, "basis": "first candidate"},
                          "budget": {"phaseUsd": 600, "sessionEstimateUsd": 250}},
            "spend": {"studyUsd": 12.5, "phaseUsd": 10.0, "sessions": [{"model": INSTRUCT, "podCostUsd": 5.0}]},
            "simulated": True}
    body.update(over)
    return body


@pytest.fixture
def study(results: Path, tmp_path: Path) -> tuple[Path, Path]:
    """phase2a: both models, few-shot clearly better; an older superseded run; phase2b: one Instruct run."""
    dataset = dataset_file(tmp_path / "pairs.jsonl", ROWS)
    for model in (INSTRUCT, THINKING):
        write_run(results, ZERO, model=model, prompt="zero-shot")
        write_run(results, FEW, model=model, prompt="few-shot")
    write_run(results, ZERO, model=INSTRUCT, prompt="few-shot", run_id="older",
              manifest={"timings": {"finishedAt": "2025-12-31T00:00:00Z"}})
    write_run(results, FEW, phase="phase2b", model=BIG_INSTRUCT, prompt="zero-shot",
              manifest={"pod": {"gpuTypeId": "NVIDIA H200", "gpuCount": 4},
                        "hardware": {"gpu": {"name": "NVIDIA H200"}}})
    return results, dataset


def run_cli(stdin: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "analysis", "packet"], input=stdin, capture_output=True, text=True,
                          cwd=REPO, timeout=120)


def test_packet_end_to_end(study: tuple[Path, Path]) -> None:
    results, dataset = study
    proc = run_cli(json.dumps(request(results, dataset)))
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    json_path, md_path = Path(out["jsonPath"]), Path(out["mdPath"])
    assert json_path == results / STUDY / "phase2a" / "decision-packet.json"
    data = json_path.read_bytes()
    assert out["packetSha256"] == hashlib.sha256(data).hexdigest()
    assert json.loads(data) == out["packet"]
    assert b"NaN" not in data and b"Infinity" not in data
    assert (results / STUDY / "samples.json").exists()
    stored = json.loads((results / STUDY / "analysis-settings.json").read_text())
    assert stored["phaseOrder"] == ["phase1", "phase2a", "phase2b"]
    assert stored["settings"]["bootstrap"]["resamples"] == 10_000

    p = out["packet"]
    assert (p["schemaVersion"], p["phase"], p["simulated"]) == (1, "phase2a", True)
    assert [(r["model"], r["prompt"]) for r in p["runs"]] == [(INSTRUCT, "zero-shot"), (INSTRUCT, "few-shot"),
                                                              (THINKING, "zero-shot"), (THINKING, "few-shot")]
    assert p["runs"][1]["superseded"] == [f"{STUDY}/phase2a/Qwen3-30B-A3B-Instruct-2507/few-shot/older"]
    rec = p["decision"]["recommendation"]
    assert (rec["action"], rec["basis"]) == ("approve", "confirms-improvement")
    ids = [c["id"] for c in p["comparisons"]]
    assert ids == ["phase2a:Qwen3-30B-A3B-Instruct-2507:few-shot-vs-zero-shot",
                   "phase2a:Qwen3-30B-A3B-Thinking-2507:few-shot-vs-zero-shot",
                   "phase2a:zero-shot:Qwen3-30B-A3B-Thinking-2507-vs-Qwen3-30B-A3B-Instruct-2507",
                   "phase2a:few-shot:Qwen3-30B-A3B-Thinking-2507-vs-Qwen3-30B-A3B-Instruct-2507",
                   "phase2b-vs-phase2a:zero-shot:Qwen3-235B-A22B-Instruct-2507-vs-Qwen3-30B-A3B-Instruct-2507"]
    prompt_cmp = p["comparisons"][0]
    assert (prompt_cmp["a"]["prompt"], prompt_cmp["b"]["prompt"]) == ("zero-shot", "few-shot")
    # Zero-shot is right on commits 0-29 and few-shot on all but commit 0: b = 2 samples, c = 60.
    assert (prompt_cmp["mcnemar"]["b"], prompt_cmp["mcnemar"]["c"]) == (2, 60)
    assert prompt_cmp["verdict"] == "improves" and prompt_cmp["nCommon"] == 120
    assert prompt_cmp["f1"]["a"] == pytest.approx(0.5) and prompt_cmp["f1"]["b"] == pytest.approx(59 / 60)
    assert prompt_cmp["mcnemar"]["pAdjusted"] is not None
    model_cmp = p["comparisons"][2]
    assert (model_cmp["kind"], model_cmp["a"]["model"], model_cmp["b"]["model"]) == ("model", INSTRUCT, THINKING)
    assert model_cmp["verdict"] is None and model_cmp["mcnemar"]["pAdjusted"] is None
    cross = p["comparisons"][4]
    assert (cross["kind"], cross["a"]["phase"], cross["b"]["phase"]) == ("phase", "phase2a", "phase2b")
    assert p["runs"][0]["pairs"]["pairs"] == COMMITS and p["runs"][0]["pairs"]["correct"] == 30
    assert "gpuModel" in p["consistency"]["confounds"]
    assert any("superseded" in w for w in p["warnings"])
    assert p["nextPhase"]["id"] == "phase2b" and p["spend"]["studyUsd"] == 12.5

    md = md_path.read_text()
    assert md.startswith(f"# Decision packet: {STUDY} / phase2a [simulated]")
    assert md.index("## Recommendation") < md.index("## Runs") < md.index("## Comparisons")
    assert "**APPROVE** (confirms-improvement)" in md
    assert "Qwen3-30B-A3B-Instruct-2507 [simulated] | zero-shot | 120 | 0.500" in md
    assert "gpuModel (hardware) differs across phases" in md and "$280.00" in md
    if out["reportPath"] is not None:
        assert Path(out["reportPath"]).exists()


@pytest.mark.parametrize(("stdin", "message"), [
    ("not json", "not valid JSON"),
    ("[]", "must be a JSON object"),
    ('{"study": "s"}', "missing field(s) resultsDir"),
])
def test_invalid_input_exits_2(stdin: str, message: str) -> None:
    proc = run_cli(stdin)
    assert proc.returncode == 2
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_invalid_fields_exit_2(study: tuple[Path, Path]) -> None:
    results, dataset = study
    cases = [
        (request(results, dataset, settings={"bootstrap": {"resamples": 1000}}), "at least 10000"),
        (request(results, dataset, datasetPath=str(dataset) + ".missing"), "does not exist"),
        (request(results, dataset, phase="phase9"), "not in phaseOrder"),
        (request(results, dataset, runDirs=[f"{STUDY}/phase2b/x"]), "not under"),
        (request(results, dataset, extra=1), "unknown field"),
        (request(results, dataset, settings={"decision": {"metric": "auc"}}), "metric"),
    ]
    for body, message in cases:
        proc = run_cli(json.dumps(body))
        assert proc.returncode == 2, body
        assert message in proc.stderr and "Traceback" not in proc.stderr


def test_run_dirs_choose_the_run(study: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    results, dataset = study
    monkeypatch.setattr(packet, "_report", lambda *_: None)
    older = f"{STUDY}/phase2a/Qwen3-30B-A3B-Instruct-2507/few-shot/older"
    out = main_packet(json.dumps(request(results, dataset, runDirs=[older])))
    runs = {(r["model"], r["prompt"]): r for r in out["packet"]["runs"]}
    assert runs[(INSTRUCT, "few-shot")]["dir"] == older
    # The report later selects the same run: the choice is kept in analysis-settings.json.
    again = analyze_study(results, STUDY)
    assert {r["dir"] for r in again["phases"]["phase2a"]["runs"]} >= {older}
    verdict = {m["model"]: m["verdict"] for m in out["packet"]["decision"]["perModel"]}
    assert verdict == {INSTRUCT: "inconclusive", THINKING: "improves"}  # older few-shot = zero-shot's answers
    assert out["packet"]["decision"]["recommendation"]["basis"] == "adds-data-point"


def test_different_sample_sets_and_duplicates(results: Path, dataset: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(packet, "_report", lambda *_: None)
    write_run(results, [(1, 1, 1), (2, 0, 0), (3, 1, 1), (4, 0, 1), (90, 0, 0)], prompt="zero-shot")
    write_run(results, [(1, 1, 0), (2, 0, 0), (3, 1, 1), (3, 1, 0), (5, 1, 1), (777, 1, 1)], prompt="few-shot",
              manifest={"energy": {"comparable": False, "reasons": ["resumed"]}, "datasetSha256": "f" * 64})
    out = main_packet(json.dumps(request(results, dataset, settings=None, nextPhase=None)))
    p = out["packet"]
    (c,) = p["comparisons"]
    assert c["nCommon"] == 3  # ids 1, 2, 3 (3 once: its first record counts)
    assert c["leftOut"] == {"onlyInA": [4, 90], "onlyInB": [5, 777]}
    assert c["duplicateIds"] == [3]
    assert (c["mcnemar"]["b"], c["mcnemar"]["c"], c["mcnemar"]["pValue"]) == (1, 0, 1.0)
    assert c["accuracy"]["a"] == 1.0 and c["accuracy"]["b"] == pytest.approx(2 / 3)
    few = p["runs"][1]
    assert few["n"] == 5 and few["duplicateIds"] == [3]
    text = "\n".join(p["warnings"])
    for needed in ("energy not comparable", "differs from samples.json", "not in samples.json", "left out 2 only",
                   "duplicated sample id"):
        assert needed in text
    assert "No next phase" in Path(out["mdPath"]).read_text()


def test_no_runs_no_evidence(results: Path, dataset: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(packet, "_report", lambda *_: None)
    out = main_packet(json.dumps(request(results, dataset)))
    p = out["packet"]
    assert p["runs"] == [] and p["comparisons"] == []
    assert (p["decision"]["recommendation"]["action"], p["decision"]["recommendation"]["basis"]) == \
        ("none", "no-evidence")
    assert "**NONE** (no-evidence)" in Path(out["mdPath"]).read_text()


def test_missing_treatment_run(results: Path, dataset: Path) -> None:
    write_run(results, [(1, 1, 1)], prompt="zero-shot")
    (results / STUDY / "samples.json").write_text(json.dumps({"samples": [{"id": 1, "label": 1, "commit": None}]}))
    analysis = analyze_study(results, STUDY)
    phase = analysis["phases"]["phase2a"]
    assert phase["decision"]["perModel"][0]["verdict"] is None
    assert "no few-shot run" in phase["decision"]["perModel"][0]["why"]
    assert analysis["settings"]["bootstrap"]["seed"] == 20260101
    with pytest.raises(AnalysisError, match="no results"):
        analyze_study(results, "nope")
