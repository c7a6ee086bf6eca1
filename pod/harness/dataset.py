"""Dataset (VulTrial/PrimeVul JSONL) and few-shot example loading."""

from __future__ import annotations

import json
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SampleId = int | str


class DatasetError(ValueError):
    pass


@dataclass(frozen=True)
class Sample:
    id: SampleId  # the row's `idx`
    label: int  # `target`: 1 vulnerable, 0 benign
    func: str


@dataclass(frozen=True)
class Dataset:
    samples: list[Sample]  # deduplicated, then cut to `limit`
    all_ids: frozenset[SampleId]  # every unique idx in the file, for the few-shot overlap check
    all_funcs: frozenset[str]  # normalised source of every unique row
    duplicates: int


@dataclass(frozen=True)
class Example:
    func: str
    target: int
    explanation: str | None
    idx: SampleId | None


def normalise_source(func: str) -> str:
    """Whitespace-insensitive form, so a reformatted copy of an evaluated function still counts as overlap."""
    return re.sub(r"\s+", " ", func).strip()


def read_regular_file(path: Path) -> str:
    """The text of a regular file; a directory, device or FIFO (`/dev/zero` never ends) raises OSError unread."""
    # O_NONBLOCK: opening a FIFO must not wait for a writer; it has no effect on a regular file.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise OSError(f"{path} is not a regular file")
        return f.read().decode("utf-8")


def _read_jsonl(path: Path, what: str) -> list[tuple[int, dict[str, Any]]]:
    try:
        lines = read_regular_file(path).splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"cannot read {what} {path}: {exc}") from exc
    rows: list[tuple[int, dict[str, Any]]] = []
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{what} {path}:{lineno}: invalid JSON: {exc}") from exc
        if not isinstance(row, dict):
            raise DatasetError(f"{what} {path}:{lineno}: expected a JSON object")
        rows.append((lineno, row))
    return rows


def _label(row: dict[str, Any], key: str, where: str) -> int:
    value = row.get(key)
    if isinstance(value, bool) or value not in (0, 1):
        raise DatasetError(f"{where}: `{key}` must be 0 or 1, got {value!r}")
    return int(value)


def _func(row: dict[str, Any], where: str) -> str:
    func = row.get("func")
    if not isinstance(func, str) or not func.strip():
        raise DatasetError(f"{where}: `func` must be a non-empty string")
    return func


def _idx(row: dict[str, Any], where: str, required: bool) -> SampleId | None:
    idx = row.get("idx")
    if idx is None and not required:
        return None
    if isinstance(idx, bool) or not isinstance(idx, (int, str)):
        raise DatasetError(f"{where}: `idx` must be an integer or string, got {idx!r}")
    return idx


def load_dataset(path: Path, limit: int | None) -> Dataset:
    seen: dict[SampleId, Sample] = {}
    duplicates = 0
    for lineno, row in _read_jsonl(path, "dataset"):
        where = f"dataset {path}:{lineno}"
        idx = _idx(row, where, required=True)
        assert idx is not None
        sample = Sample(id=idx, label=_label(row, "target", where), func=_func(row, where))
        if idx in seen:
            duplicates += 1  # the VulTrial file repeats two rows; the first copy wins
            continue
        seen[idx] = sample
    if not seen:
        raise DatasetError(f"dataset {path} has no rows")
    unique = list(seen.values())
    return Dataset(
        samples=unique[:limit] if limit is not None else unique,
        all_ids=frozenset(seen),
        all_funcs=frozenset(normalise_source(s.func) for s in unique),
        duplicates=duplicates,
    )


def load_examples(path: Path) -> list[Example]:
    examples: list[Example] = []
    for lineno, row in _read_jsonl(path, "few-shot file"):
        where = f"few-shot file {path}:{lineno}"
        explanation = row.get("explanation")
        if explanation is not None and not isinstance(explanation, str):
            raise DatasetError(f"{where}: `explanation` must be a string when present")
        examples.append(Example(_func(row, where), _label(row, "target", where), explanation,
                                _idx(row, where, required=False)))
    if not examples:
        raise DatasetError(f"few-shot file {path} has no examples")
    return examples
