"""Checks a study's inputs on the worker, before any pod is rented, with the harness's own rules (one definition).

`python3 -m harness.check` reads JSON on stdin:
  {"datasetPath": str, "prompts": [{"name": str, "templatePath": str, "fewShotPath": str | null}],
   "codecarbon": {"countryIsoCode": str, "measurePowerSecs": number, "trackingMode": str}}
and prints one JSON object: {"problems": [str], "samples": int | null, "duplicates": int | null}. Each problem
starts with the study field it is about. Exit 0 whenever it could check (problems or not); 2 on unusable input.
Standard library only: it runs in any Python 3.10+.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from .dataset import Dataset, DatasetError, load_dataset, load_examples
from .prompt import PromptError, check_examples, load_template
from .spec import SpecError, parse_codecarbon


def check(raw: dict[str, Any]) -> dict[str, Any]:
    problems: list[str] = []
    try:
        parse_codecarbon(raw["codecarbon"])
    except SpecError as exc:
        problems.append(f"codecarbon: {exc}")
    dataset: Dataset | None = None
    try:
        dataset = load_dataset(Path(raw["datasetPath"]), None)
    except DatasetError as exc:
        problems.append(f"datasetPath: {exc}")
    for i, prompt in enumerate(raw["prompts"]):
        few_shot = prompt.get("fewShotPath")
        try:
            load_template(Path(prompt["templatePath"]), few_shot=few_shot is not None)
        except PromptError as exc:
            problems.append(f"prompts.{i}.templatePath: {exc}")
        if few_shot is None:
            continue
        try:
            examples = load_examples(Path(few_shot))
            if dataset is not None:  # the overlap guard needs the dataset
                check_examples(examples, dataset, Path(few_shot))
        except (DatasetError, PromptError) as exc:
            problems.append(f"prompts.{i}.fewShotExamplesPath: {exc}")
    return {
        "problems": problems,
        "samples": len(dataset.all_ids) if dataset else None,
        "duplicates": dataset.duplicates if dataset else None,
    }


def main() -> int:
    try:
        raw = json.loads(sys.stdin.read())
        if not isinstance(raw, dict) or not isinstance(raw.get("prompts"), list):
            raise ValueError("expected an object with datasetPath, prompts and codecarbon")
        result = check(raw)
    except (ValueError, KeyError, TypeError) as exc:
        print(f"harness.check: unusable input: {exc!r}", file=sys.stderr)
        return 2
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
