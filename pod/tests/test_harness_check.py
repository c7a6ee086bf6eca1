"""`python -m harness.check`: the harness's own input rules, run on the worker before a pod is rented."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import POD_DIR, PROMPTS, REPO, write_jsonl
from harness.spec import MIN_MEASURE_POWER_SECS

DATASET = REPO / "data" / "synthetic-vultrial.jsonl"
CODECARBON = {"countryIsoCode": "USA", "measurePowerSecs": 1, "trackingMode": "machine"}


def run_check(payload: dict[str, Any]) -> tuple[int, dict[str, Any] | None, str]:
    """As the worker runs it: a separate process, JSON on stdin. A timeout: /dev/zero must be refused unread."""
    env = {**os.environ, "PYTHONPATH": str(POD_DIR), "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.run([sys.executable, "-m", "harness.check"], input=json.dumps(payload), capture_output=True,
                          text=True, env=env, cwd=POD_DIR, timeout=30)
    return proc.returncode, json.loads(proc.stdout) if proc.stdout.strip() else None, proc.stderr


def study_inputs(**overrides: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "datasetPath": str(DATASET),
        "prompts": [
            {"name": "zero-shot", "templatePath": str(PROMPTS / "zero-shot.txt"), "fewShotPath": None},
            {"name": "few-shot", "templatePath": str(PROMPTS / "few-shot.txt"),
             "fewShotPath": str(PROMPTS / "few-shot-examples.jsonl")},
        ],
        "codecarbon": CODECARBON,
    }
    payload.update(overrides)
    return payload


def test_the_shipped_study_inputs_pass() -> None:
    code, out, _ = run_check(study_inputs())
    assert code == 0 and out is not None
    assert out["problems"] == []
    assert out["samples"] and out["samples"] > 0


def test_a_template_that_references_a_label_field_is_refused(tmp_path: Path) -> None:
    leaky = tmp_path / "leaky.txt"
    leaky.write_text("Commit says {commit_message}. Is this vulnerable?\n{func}\n")
    prompts = [{"name": "zero-shot", "templatePath": str(leaky), "fewShotPath": None}]
    code, out, _ = run_check(study_inputs(prompts=prompts))
    assert code == 0 and out is not None
    assert len(out["problems"]) == 1
    assert out["problems"][0].startswith("prompts.0.templatePath: label leak")


def test_few_shot_examples_from_the_evaluated_dataset_are_refused(tmp_path: Path) -> None:
    row = json.loads(DATASET.read_text().splitlines()[0])
    examples = tmp_path / "examples.jsonl"
    # Reformatted and without its idx: still the same function.
    write_jsonl(examples, [{"func": "  " + row["func"].replace("\n", "\n\n"), "target": row["target"]}])
    prompts = [{"name": "few-shot", "templatePath": str(PROMPTS / "few-shot.txt"), "fewShotPath": str(examples)}]
    code, out, _ = run_check(study_inputs(prompts=prompts))
    assert code == 0 and out is not None
    assert [p.split(": ")[0] for p in out["problems"]] == ["prompts.0.fewShotExamplesPath"]
    assert "few-shot overlap" in out["problems"][0]


@pytest.mark.parametrize("special", ["directory", "/dev/zero", "fifo"])
def test_a_dataset_that_is_not_a_regular_file_is_refused_unread(tmp_path: Path, special: str) -> None:
    if special == "directory":
        path = tmp_path
    elif special == "fifo":
        path = tmp_path / "fifo"
        os.mkfifo(path)  # opening it for reading would wait for a writer for ever
    else:
        path = Path(special)
    code, out, _ = run_check(study_inputs(datasetPath=str(path)))
    assert code == 0 and out is not None
    assert [p.split(": ")[0] for p in out["problems"]] == ["datasetPath"]
    assert "cannot read dataset" in out["problems"][0]


def test_measure_power_secs_below_the_harness_minimum_is_refused() -> None:
    assert MIN_MEASURE_POWER_SECS == 0.1  # the same number as MIN_MEASURE_POWER_SECS in src/shared/constants.ts
    code, out, _ = run_check(study_inputs(codecarbon={**CODECARBON, "measurePowerSecs": 0.05}))
    assert code == 0 and out is not None
    assert [p.split(": ")[0] for p in out["problems"]] == ["codecarbon"]
    code, out, _ = run_check(study_inputs(codecarbon={**CODECARBON, "measurePowerSecs": MIN_MEASURE_POWER_SECS}))
    assert out is not None and out["problems"] == []


def test_unusable_input_exits_2() -> None:
    code, out, stderr = run_check({"datasetPath": str(DATASET)})
    assert code == 2 and out is None
    assert "unusable input" in stderr
