"""Harness pieces in-process: parser, reasoning split, dataset, prompt guards, lock rule, metrics, spec."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import PROMPTS, dataset_rows, write_jsonl
from harness.dataset import DatasetError, load_dataset, load_examples
from harness.energy import lock_is_stale
from harness.metrics import build_metrics, confusion
from harness.parse import parse_answer, split_output
from harness.prompt import PromptBuilder, PromptError, check_examples, load_template, render_examples
from harness.spec import SpecError, parse_spec


@pytest.mark.parametrize(("text", "expected"), [
    ("It copies without a check.\nFINAL ANSWER: YES", 1),
    ("Looks fine.\n\nFINAL ANSWER: NO\n", 0),
    ("  FINAL ANSWER:   YES  ", 1),
    ("FINAL ANSWER: YES\nOn reflection the check is there.\nFINAL ANSWER: NO", 0),  # last line wins
    ("FINAL ANSWER: NO\ntrailing explanation after the answer", 0),
    ("final answer: yes", None),
    ("**FINAL ANSWER: YES**", None),
    ("FINAL ANSWER: MAYBE", None),
    ("The answer is FINAL ANSWER: YES inline", None),
    ("FINAL ANSWER: YES.", None),
    ("no verdict at all", None),
    ("", None),
    (None, None),
])
def test_parse_answer_is_strict(text: str | None, expected: int | None) -> None:
    assert parse_answer(text) == expected


def test_split_uses_reasoning_field_and_ignores_answers_inside_reasoning() -> None:
    split = split_output("Short answer.\nFINAL ANSWER: NO", "maybe FINAL ANSWER: YES?", True, "stop")
    assert split.reasoning == "maybe FINAL ANSWER: YES?"
    assert parse_answer(split.answer) == 0


def test_split_on_last_think_close_without_opening_tag() -> None:
    content = "Hmm.\nFINAL ANSWER: YES\n</think>\nmore thought</think>\n\nIt is safe.\nFINAL ANSWER: NO"
    split = split_output(content, None, True, "stop")
    assert split.answer == "\n\nIt is safe.\nFINAL ANSWER: NO"
    assert split.reasoning is not None and split.reasoning.endswith("more thought")
    assert parse_answer(split.answer) == 0


def test_split_truncated_thinking_is_all_reasoning() -> None:
    split = split_output("Thinking... FINAL ANSWER: YES\nstill thinking", None, True, "length")
    assert split.answer is None and parse_answer(split.answer) is None
    assert split.reasoning is not None and split.reasoning.startswith("Thinking")


def test_split_leaves_instruct_content_alone() -> None:
    split = split_output("a </think> b\nFINAL ANSWER: YES", None, False, "stop")
    assert split.answer == "a </think> b\nFINAL ANSWER: YES" and split.reasoning is None


def test_dataset_dedup_by_idx_keeps_first_and_counts(tmp_path: Path) -> None:
    rows = dataset_rows(6)
    changed = dict(rows[1], func="int other(void) { return 0; }")
    path = write_jsonl(tmp_path / "d.jsonl", rows + [rows[0], changed])
    data = load_dataset(path, limit=None)
    assert [s.id for s in data.samples] == [r["idx"] for r in rows]
    assert data.duplicates == 2
    assert data.samples[1].func == rows[1]["func"]
    limited = load_dataset(path, limit=3)
    assert len(limited.samples) == 3 and len(limited.all_ids) == 6  # overlap check still sees every row


def test_dataset_rejects_bad_label(tmp_path: Path) -> None:
    rows = dataset_rows(2)
    rows[1]["target"] = "1"
    with pytest.raises(DatasetError, match="target"):
        load_dataset(write_jsonl(tmp_path / "d.jsonl", rows), limit=None)


@pytest.mark.parametrize("field", ["commit_message", "cve", "cve_desc", "cwe", "target"])
def test_template_with_label_field_is_refused(tmp_path: Path, field: str) -> None:
    path = tmp_path / "t.txt"
    path.write_text(f"Hint: {{{field}}}\n```c\n{{func}}\n```\nFINAL ANSWER: YES or NO")
    with pytest.raises(PromptError, match="label leak"):
        load_template(path, few_shot=False)


@pytest.mark.parametrize(("text", "few_shot", "message"), [
    ("```c\n{func}\n```\n{project}", False, "unknown placeholder"),
    ("no function here", False, "no {func}"),
    ("{examples}\n{func}", False, "fewShotPath is null"),
    ("{func}", True, "no {examples}"),
])
def test_template_shape_errors(tmp_path: Path, text: str, few_shot: bool, message: str) -> None:
    path = tmp_path / "t.txt"
    path.write_text(text)
    with pytest.raises(PromptError, match=message):
        load_template(path, few_shot=few_shot)


def test_render_inserts_code_once_and_evaluated_function_is_last_block(tmp_path: Path) -> None:
    from vllm_sim import CODE_BLOCK_RE

    examples_path = write_jsonl(tmp_path / "ex.jsonl", [
        {"func": "void a(char *s) { char b[4]; strcpy(b, s); }", "target": 1, "explanation": "Unbounded copy."},
        {"func": "int b(void) { return 0; }", "target": 0},
    ])
    examples = load_examples(examples_path)
    builder = PromptBuilder(load_template(PROMPTS / "few-shot.txt", few_shot=True), render_examples(examples))
    func = 'int f(void) { const char *s = "{examples} {cve}"; return 0; }'
    prompt = builder.render(func)
    assert prompt.count("Example 1:") == 1 and "Unbounded copy.\nFINAL ANSWER: YES" in prompt
    assert "{examples} {cve}" in prompt  # braces inside inserted code stay literal
    assert CODE_BLOCK_RE.findall(prompt)[-1].strip() == func  # what the simulator judges


def test_few_shot_overlap_is_refused(tmp_path: Path) -> None:
    rows = dataset_rows(4)
    data = load_dataset(write_jsonl(tmp_path / "d.jsonl", rows), limit=1)
    by_idx = write_jsonl(tmp_path / "a.jsonl", [{"idx": rows[3]["idx"], "func": "int z(void);", "target": 0}])
    with pytest.raises(PromptError, match="few-shot overlap.*idx"):
        check_examples(load_examples(by_idx), data, by_idx)
    reformatted = "  " + rows[2]["func"].replace("\n", "\n\n  ")
    by_func = write_jsonl(tmp_path / "b.jsonl", [{"func": reformatted, "target": 1}])
    with pytest.raises(PromptError, match="few-shot overlap.*same func"):
        check_examples(load_examples(by_func), data, by_func)


def test_few_shot_example_with_label_placeholder_is_refused(tmp_path: Path) -> None:
    data = load_dataset(write_jsonl(tmp_path / "d.jsonl", dataset_rows(2)), limit=None)
    path = write_jsonl(tmp_path / "e.jsonl", [{"func": "int q(void);", "target": 1, "explanation": "See {cve_desc}"}])
    with pytest.raises(PromptError, match="label leak"):
        check_examples(load_examples(path), data, path)


def test_lock_rule(tmp_path: Path) -> None:
    lock = tmp_path / ".codecarbon.lock"
    assert not lock_is_stale(lock)  # absent
    dead = subprocess.Popen(["true"])
    dead.wait()
    lock.write_text(str(dead.pid))
    assert lock_is_stale(lock)
    lock.write_text(str(os.getpid()))
    assert not lock_is_stale(lock)
    lock.write_text("")  # as CodeCarbon 2.7.1 writes it: decided by other live harness processes
    proc = tmp_path / "proc"
    (proc / "4242").mkdir(parents=True)
    (proc / "4242" / "cmdline").write_bytes(b"python3\0-m\0harness.run\0--spec\0x\0")
    assert not lock_is_stale(lock, proc)
    (proc / "4242" / "cmdline").write_bytes(b"sleep\x00100\x00")
    assert lock_is_stale(lock, proc)


def test_unparseable_counts_as_wrong() -> None:
    records: list[dict[str, Any]] = [
        {"label": 1, "prediction": 1}, {"label": 1, "prediction": None}, {"label": 0, "prediction": None},
        {"label": 0, "prediction": 0}, {"label": 0, "prediction": 1},
    ]
    c = confusion(records)
    assert (c.tp, c.fn, c.fp, c.tn) == (1, 1, 2, 1)


def test_metrics_sum_attempts_and_subtract_baseline() -> None:
    records = [{"label": 1, "prediction": 1, "completion_tokens": 10, "prompt_tokens": 5, "latency_ms": 3.0},
               {"label": 0, "prediction": 0, "completion_tokens": 30, "prompt_tokens": 5, "latency_ms": 5.0}]
    window = {"duration_s": 36.0, "gpu_kwh": 0.002, "cpu_kwh": 0.001, "ram_kwh": 0.0005, "total_kwh": 0.0035,
              "nvml_kwh": 0.0019}
    attempts = [
        {"done_before": 0, "done_after": 1, "baseline": {"gpu_power_w": 100.0, "duration_s": 2.0},
         "inference": window},
        {"done_before": 1, "done_after": 2, "baseline": {"gpu_power_w": 50.0, "duration_s": 2.0},
         "inference": window},
    ]
    m = build_metrics("r", "model", records, attempts, rapl=False, gpu_present=True)
    e = m["energy"]
    assert m["accuracy"] == 1.0 and m["f1"] == 1.0 and m["tokens"]["completion"] == 40
    assert e["gpu_kwh"] == pytest.approx(0.004)
    assert e["gpu_kwh_net_of_baseline"] == pytest.approx(0.004 - 0.001 - 0.0005)  # 100 W and 50 W for 36 s
    assert e["gpu_kwh_per_output_token"] == pytest.approx(0.004 / 40)
    assert e["nvml_gpu_kwh"] == pytest.approx(0.0038)
    assert e["codecarbon_minus_nvml_gpu_kwh"] == pytest.approx(0.0002)
    assert e["complete"] and e["attempts"] == 2
    assert m["energy_estimates"] == {"cpu": True, "ram": True, "gpu": False}


def _spec(**overrides: object) -> dict[str, object]:
    spec = json.loads((Path(__file__).parent / "spec.example.json").read_text())
    spec.update(overrides)
    return spec


def test_spec_example_parses() -> None:
    spec = parse_spec(_spec())
    assert spec.sampling.top_k == 20 and spec.codecarbon.country_iso_code == "USA" and spec.limit is None


@pytest.mark.parametrize(("override", "message"), [
    ({"schemaVersion": 2}, "schemaVersion"),
    ({"concurrency": True}, "concurrency"),
    ({"concurrency": 0}, "concurrency"),
    ({"limit": 0}, "limit"),
    ({"thinking": "no"}, "thinking"),
    ({"codecarbon": {"countryIsoCode": "USA", "measurePowerSecs": 1, "trackingMode": "gpu"}}, "trackingMode"),
])
def test_spec_errors(override: dict[str, object], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        parse_spec(_spec(**override))


def test_metrics_nvml_net_of_baseline_uses_the_baselines_nvml_power() -> None:
    records = [{"label": 1, "prediction": 1, "completion_tokens": 10, "prompt_tokens": 5, "latency_ms": 3.0}]
    window = {"duration_s": 36.0, "gpu_kwh": 0.002, "cpu_kwh": 0.0, "ram_kwh": 0.0, "total_kwh": 0.002,
              "nvml_kwh": 0.0019}
    baseline = {"gpu_power_w": 100.0, "nvml_gpu_power_w": 90.0, "duration_s": 2.0}
    e = build_metrics("r", "m", records, [{"done_before": 0, "done_after": 1, "baseline": baseline,
                                           "inference": window}], rapl=False, gpu_present=True)["energy"]
    assert e["nvml_gpu_kwh_net_of_baseline"] == pytest.approx(0.0019 - 0.0009)  # 90 W for 36 s
    no_gpu = dict(window, nvml_kwh=None)
    e = build_metrics("r", "m", records, [{"done_before": 0, "done_after": 1, "baseline": baseline,
                                           "inference": no_gpu}], rapl=False, gpu_present=False)["energy"]
    assert e["nvml_gpu_kwh"] is None and e["nvml_gpu_kwh_net_of_baseline"] is None


def test_gpu_summary_reads_nvidia_smi_and_says_why_it_is_empty(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.environment import cuda_driver_version, gpu_summary, nvidia_smi

    monkeypatch.setenv("PATH", str(tmp_path))  # no nvidia-smi
    assert nvidia_smi() is None and cuda_driver_version() is None
    empty = gpu_summary(None, None)
    assert empty["present"] is False and empty["name"] is None and "no NVIDIA GPU" in empty["note"]
    # A stand-in nvidia-smi with the real output formats (query CSV without units, and the banner).
    fake = tmp_path / "nvidia-smi"
    fake.write_text("#!/bin/sh\n"
                    'case "$1" in --query-gpu=*) echo "0, NVIDIA H100 80GB HBM3, 81559, 700.00, 570.124.06, GPU-1";;\n'
                    '*) echo "| NVIDIA-SMI 570.124.06   Driver Version: 570.124.06   CUDA Version: 12.8 |";; esac\n')
    fake.chmod(0o755)
    smi = nvidia_smi()
    summary = gpu_summary(smi, cuda_driver_version())
    assert summary == {"present": True, "count": 1, "name": "NVIDIA H100 80GB HBM3", "memory_total_mib": 81559.0,
                       "power_limit_w": 700.0, "driver_version": "570.124.06", "cuda_driver_version": "12.8",
                       "indices": [0], "note": None}


def test_gpu_summary_keeps_only_the_runs_gpus() -> None:
    from harness.environment import gpu_summary

    smi = [{"index": str(i), "name": "NVIDIA RTX A5000", "memory.total": "24564", "power.limit": "230.00",
            "driver_version": "550.54.14", "uuid": f"GPU-{i}"} for i in range(4)]
    assert gpu_summary(smi, "12.4")["count"] == 4
    one = gpu_summary(smi, "12.4", (2,))
    assert one["count"] == 1 and one["indices"] == [2] and one["name"] == "NVIDIA RTX A5000"
    missing = gpu_summary(smi, "12.4", (7,))
    assert missing["present"] is False and "[7]" in missing["note"]


def test_spec_gpu_indices() -> None:
    assert parse_spec(_spec()).gpu_indices is None  # absent: every GPU of the pod
    assert parse_spec(_spec(gpuIndices=None)).gpu_indices is None
    assert parse_spec(_spec(gpuIndices=[2])).gpu_indices == (2,)
    for bad in ([], [-1], ["0"], [True], 0):
        with pytest.raises(SpecError, match="gpuIndices"):
            parse_spec(_spec(gpuIndices=bad))


def test_energy_window_meters_only_the_runs_gpus(tmp_path: Path) -> None:
    from harness.energy import EnergyWindow

    spec = parse_spec(_spec(outputDir=str(tmp_path), gpuIndices=[1, 3]))
    assert EnergyWindow(spec, "p", save_to_file=False).tracker._gpu_ids == [1, 3]
    every = parse_spec(_spec(outputDir=str(tmp_path)))
    assert not EnergyWindow(every, "p", save_to_file=False).tracker._gpu_ids  # CodeCarbon: all GPUs
