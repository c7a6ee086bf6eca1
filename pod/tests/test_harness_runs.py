"""End-to-end harness runs against the simulated vLLM: outputs, resume, the stale lock, thinking, crashes."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    PROMPTS,
    Sim,
    child_env,
    dataset_rows,
    launch_sim,
    read_json,
    read_predictions,
    run_harness,
    wait_healthy,
    write_jsonl,
    write_spec,
)
from harness.energy import LOCK_PATH, rapl_readable

PREDICTION_FIELDS = {"id", "label", "raw_output", "reasoning", "prediction", "parsed", "finish_reason",
                     "prompt_tokens", "completion_tokens", "latency_ms", "sampling", "error"}
SPEC_SAMPLING = {"temperature": 0.7, "top_p": 0.8, "top_k": 20, "min_p": 0.0, "max_tokens": 512, "seed": 1234}


def emissions_rows(out: Path) -> list[dict[str, str]]:
    with (out / "emissions.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


def progress_stage(out: Path) -> str | None:
    try:
        return str(read_json(out / "progress.json").get("stage"))
    except (FileNotFoundError, ValueError):
        return None


def assert_unique_complete(out: Path, n: int) -> list[dict[str, Any]]:
    records = read_predictions(out)
    ids = [r["id"] for r in records]
    assert len(ids) == len(set(ids)) == n
    return records


@pytest.fixture(scope="module")
def full_run(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """One complete run shared by the output checks and the resume test (each harness run costs seconds)."""
    root = tmp_path_factory.mktemp("full")
    rows = dataset_rows(16)
    data = write_jsonl(root / "dataset.jsonl", rows + [rows[2]])
    proc, port = launch_sim(model_dir, root / "vllm.log", ["--served-model-name", "sim/Qwen3-30B-A3B-Instruct-2507"])
    try:
        wait_healthy(proc, port, root / "vllm.log")
        result = run_harness(write_spec(root / "run-full", f"http://127.0.0.1:{port}", data))
        assert result.returncode == 0, result.stderr
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    return root / "run-full", root / "vllm.log"


def test_full_run_writes_every_output(full_run: tuple[Path, Path]) -> None:
    out, vllm_log = full_run
    for name in ("harness.pid", "progress.json", "predictions.jsonl", "emissions.csv", "baseline.json",
                 "metrics.json", "environment.json", "harness.log", "attempts.jsonl"):
        assert (out / name).is_file(), name
    progress = read_json(out / "progress.json")
    assert progress["state"] == "done" and progress["done"] == progress["total"] == 16 and "error" not in progress

    records = assert_unique_complete(out, 16)
    assert all(r.keys() >= PREDICTION_FIELDS for r in records)
    assert all(r["sampling"] == SPEC_SAMPLING for r in records)  # each record says what its request carried
    assert all(r["parsed"] == (r["prediction"] is not None) and r["completion_tokens"] > 0 for r in records)

    m = read_json(out / "metrics.json")
    c = m["confusion"]
    assert m["schemaVersion"] == 1 and m["n"] == 16 and sum(c.values()) == 16
    assert m["accuracy"] == pytest.approx((c["tp"] + c["tn"]) / 16) and m["accuracy"] >= 0.6
    assert 0 <= m["precision"] <= 1 and 0 <= m["recall"] <= 1 and 0 <= m["f1"] <= 1
    assert m["unparseable"] == sum(1 for r in records if r["prediction"] is None)
    assert m["tokens"]["completion"] == sum(r["completion_tokens"] for r in records)
    e = m["energy"]
    assert e["complete"] and e["attempts"] == 1 and e["cpu_kwh"] > 0 and e["ram_kwh"] > 0
    assert e["nvml_gpu_kwh"] is None and e["codecarbon_minus_nvml_gpu_kwh"] is None and m["gpu_present"] is False
    assert e["gpu_kwh"] is None and e["gpu_kwh_per_sample"] is None  # no GPU here: no GPU figure, not zeros
    assert m["energy_estimates"] == {"cpu": not rapl_readable(), "ram": True, "gpu": False}

    rows = [r for r in emissions_rows(out) if r["project_name"] == out.name]
    assert len(rows) == 1 and rows[0]["codecarbon_version"] == "2.7.1"
    attempt = json.loads((out / "attempts.jsonl").read_text())
    assert rows[0]["run_id"] == attempt["inference"]["codecarbon_run_id"]
    assert read_json(out / "baseline.json")["duration_s"] >= 0.5

    env = read_json(out / "environment.json")
    assert env["vllm"]["version"] == "0.11.0+sim" and env["codecarbon"] == "2.7.1"
    assert env["huggingface_hub"] and env["hostname"]
    # no GPU here: every GPU field is null, and the note says so (the manifest copies it)
    assert env["gpu"]["present"] is False and env["gpu"]["name"] is None and env["gpu"]["note"]
    assert env["torch"] is None and env["cuda_runtime"] is None
    assert "dropped 1 rows with a duplicate idx" in (out / "harness.log").read_text()
    # every sampling field went out explicitly
    assert "temperature=0.7, top_p=0.8, top_k=20, min_p=0.0, seed=1234" in vllm_log.read_text()


def test_resume_requests_only_missing_ids(full_run: tuple[Path, Path], start_sim: Callable[..., Sim],
                                          tmp_path: Path) -> None:
    done_lines = (full_run[0] / "predictions.jsonl").read_text().splitlines(keepends=True)
    out = tmp_path / "run-resume"
    out.mkdir()
    torn = done_lines[6][: len(done_lines[6]) // 2]  # killed mid-write
    (out / "predictions.jsonl").write_text("".join(done_lines[:6]) + torn)
    data = full_run[0].parent / "dataset.jsonl"
    sim = start_sim()
    result = run_harness(write_spec(out, sim.url, data))
    assert result.returncode == 0, result.stderr
    assert_unique_complete(out, 16)
    assert sim.counter("vllm:request_success_total") == 10
    m = read_json(out / "metrics.json")
    assert m["n"] == 16
    # the first 6 samples were measured by no attempt this run directory knows of
    assert m["energy"]["measured_samples"] == 10 and m["energy"]["complete"] is False


def test_stale_lock_is_removed_and_run_still_records(start_sim: Callable[..., Sim], dataset: Path,
                                                     tmp_path: Path) -> None:
    if LOCK_PATH.exists():
        pytest.skip(f"{LOCK_PATH} exists already; not touching another process's lock")
    dead = subprocess.Popen(["true"])
    dead.wait()
    LOCK_PATH.write_text(str(dead.pid))
    try:
        sim = start_sim()
        out = tmp_path / "run-lock"
        result = run_harness(write_spec(out, sim.url, dataset, limit=4))
        assert result.returncode == 0, result.stderr
        assert not LOCK_PATH.exists()
        assert "removed stale CodeCarbon lock" in (out / "harness.log").read_text()
        assert [r["project_name"] for r in emissions_rows(out)] == [out.name]
    finally:
        LOCK_PATH.unlink(missing_ok=True)


def test_stale_lock_trap_silences_a_default_tracker_until_removed(tmp_path: Path) -> None:
    """The 2.7.1 trap itself: an empty leftover lock makes a default tracker record nothing, without an error."""
    from codecarbon import OfflineEmissionsTracker
    from harness.energy import clear_stale_lock

    if LOCK_PATH.exists():
        pytest.skip(f"{LOCK_PATH} exists already; not touching another process's lock")

    def default_tracker(name: str) -> OfflineEmissionsTracker:
        return OfflineEmissionsTracker(country_iso_code="USA", output_dir=str(tmp_path), project_name=name,
                                       measure_power_secs=1, log_level="error")

    LOCK_PATH.write_text("")  # what a crashed 2.7.1 run leaves behind
    try:
        silenced = default_tracker("silenced")
        silenced.start()
        assert silenced.stop() is None  # no exception, no data, no CSV row
        assert not (tmp_path / "emissions.csv").exists()
        clear_stale_lock()  # no other harness.run is alive: the empty lock is stale
        assert not LOCK_PATH.exists()
        tracker = default_tracker("recorded")
        tracker.start()
        assert tracker.stop() is not None
        assert [r["project_name"] for r in emissions_rows(tmp_path)] == ["recorded"]
    finally:
        LOCK_PATH.unlink(missing_ok=True)


def test_missing_emissions_row_makes_the_run_invalid(start_sim: Callable[..., Sim], dataset: Path,
                                                    tmp_path: Path) -> None:
    """CodeCarbon swallows a failed CSV write; the harness checks for its row and fails the run instead."""
    sim = start_sim()
    out = tmp_path / "run-no-row"
    out.mkdir()
    (out / "emissions.csv").mkdir()  # the tracker cannot write its row
    spec = write_spec(out, sim.url, dataset, limit=4)
    result = run_harness(spec)
    assert result.returncode == 1
    progress = read_json(out / "progress.json")
    assert progress["state"] == "failed" and progress["error"].startswith("MeasurementError")
    assert "no row for CodeCarbon run" in progress["error"]
    assert not (out / "metrics.json").exists()
    assert len(read_predictions(out)) == 4  # the answers are kept; only the energy is invalid
    # Resumed in place: nothing is left to measure, so the run has no energy figures at all (never zeros).
    assert run_harness(spec).returncode == 0
    energy = read_json(out / "metrics.json")["energy"]
    assert energy["complete"] is False and energy["measured_samples"] == 0
    assert energy["gpu_kwh"] is None and energy["gpu_kwh_per_sample"] is None


def test_codecarbon_version_is_asserted(monkeypatch: pytest.MonkeyPatch) -> None:
    import codecarbon
    from harness.energy import MeasurementError, require_codecarbon

    assert require_codecarbon() == "2.7.1"
    monkeypatch.setattr(codecarbon, "__version__", "3.0.7")  # what the earlier project's pods logged
    with pytest.raises(MeasurementError, match="3.0.7"):
        require_codecarbon()


@pytest.mark.parametrize("parser", [None, "deepseek_r1"])
def test_thinking_model_reasoning_is_kept_apart(start_sim: Callable[..., Sim], dataset: Path, tmp_path: Path,
                                                parser: str | None) -> None:
    name = "sim/Qwen3-30B-A3B-Thinking-2507"
    sim = start_sim(name=name, args=["--reasoning-parser", parser] if parser else [])
    out = tmp_path / "run-thinking"
    result = run_harness(write_spec(out, sim.url, dataset, servedModelName=name, thinking=True, limit=6,
                                    sampling={"temperature": 0.6, "topP": 0.95, "topK": 20, "minP": 0,
                                              "maxTokens": 512, "seed": 7}))
    assert result.returncode == 0, result.stderr
    for record in assert_unique_complete(out, 6):
        assert record["reasoning"].startswith("Okay, let me look at")
        assert "</think>" not in (record["raw_output"] or "") and "Okay" not in (record["raw_output"] or "")
    assert read_json(out / "metrics.json")["accuracy"] > 0


def test_label_leak_fails_the_run_cleanly(dataset: Path, tmp_path: Path) -> None:
    template = tmp_path / "leaky.txt"
    template.write_text((PROMPTS / "zero-shot.txt").read_text() + "\nKnown CVE: {cve_desc}\n")
    out = tmp_path / "run-leak"
    result = run_harness(write_spec(out, "http://127.0.0.1:9", dataset, promptTemplatePath=str(template)))
    assert result.returncode != 0
    progress = read_json(out / "progress.json")
    assert progress["state"] == "failed" and "label leak" in progress["error"]
    assert not (out / "predictions.jsonl").exists()


def test_crash_mid_run_fails_cleanly_then_resumes(start_sim: Callable[..., Sim], tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "dataset.jsonl", dataset_rows(12))
    crashing = start_sim(env={"VLLM_SIM_FAULT": "crash-after:5"})
    out = tmp_path / "run-crash"
    first = run_harness(write_spec(out, crashing.url, data, concurrency=2))
    assert first.returncode == 1
    assert crashing.proc.wait(timeout=10) == 1
    progress = read_json(out / "progress.json")
    assert progress["state"] == "failed" and "/v1/chat/completions" in progress["error"]
    partial = len(read_predictions(out))
    assert partial == progress["done"] == 5
    assert not (out / "metrics.json").exists()

    restarted = start_sim()
    second = run_harness(write_spec(out, restarted.url, data, concurrency=2))
    assert second.returncode == 0, second.stderr
    assert_unique_complete(out, 12)
    assert restarted.counter("vllm:request_success_total") == 12 - partial
    attempts = [json.loads(line) for line in (out / "attempts.jsonl").read_text().splitlines()]
    assert [a["error"] is None for a in attempts] == [False, True]
    energy = read_json(out / "metrics.json")["energy"]
    assert energy["attempts"] == 2 and energy["complete"] is True  # the failed attempt's window was recorded
    assert len([r for r in emissions_rows(out) if r["project_name"] == out.name]) == 2


def test_sigterm_stops_the_tracker_and_marks_failed(start_sim: Callable[..., Sim], dataset: Path,
                                                     tmp_path: Path) -> None:
    sim = start_sim(env={"VLLM_SIM_TOKENS_PER_S": "100"})  # ~0.4 s a request
    out = tmp_path / "run-term"
    spec = write_spec(out, sim.url, dataset, concurrency=1, baselineSeconds=0)
    proc = subprocess.Popen([sys.executable, "-m", "harness.run", "--spec", str(spec)], cwd=out, env=child_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while not (out / "predictions.jsonl").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 143
    progress = read_json(out / "progress.json")
    assert progress["state"] == "failed" and "SIGTERM" in progress["error"]
    assert 1 <= len(read_predictions(out)) < 16
    assert [r["project_name"] for r in emissions_rows(out)] == [out.name]  # the window was closed and written


def test_invalid_spec_exits_2_and_says_why(tmp_path: Path, dataset: Path) -> None:
    spec = write_spec(tmp_path / "run-bad", "http://127.0.0.1:9", dataset, concurrency=0)
    result = run_harness(spec)
    assert result.returncode == 2
    progress = read_json(spec.parent / "progress.json")
    assert progress["state"] == "failed" and "concurrency" in progress["error"]


def test_second_start_of_a_running_run_refuses_and_leaves_it_alone(start_sim: Callable[..., Sim], dataset: Path,
                                                                    tmp_path: Path) -> None:
    sim = start_sim()
    out = tmp_path / "run-twice"
    spec = write_spec(out, sim.url, dataset, baselineSeconds=3, limit=2)
    owner = subprocess.Popen([sys.executable, "-m", "harness.run", "--spec", str(spec)], cwd=out, env=child_env(),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while progress_stage(out) != "baseline" and time.monotonic() < deadline:
            time.sleep(0.05)
        (out / "harness.pid").write_text("1\n")  # as a second `startDetached` would leave it
        second = run_harness(spec)
        assert second.returncode == 3 and f"already running (pid {owner.pid})" in second.stderr
        assert (out / "harness.pid").read_text().strip() == str(owner.pid)  # pointed back at the owner
        assert owner.wait(timeout=60) == 0
    finally:
        if owner.poll() is None:
            owner.kill()
    assert_unique_complete(out, 2)
    assert len((out / "attempts.jsonl").read_text().splitlines()) == 1
