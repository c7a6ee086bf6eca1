"""Run-directory files: atomic JSON writes, progress.json, predictions.jsonl (append-only, resumable)."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .dataset import SampleId

log = logging.getLogger("harness.store")


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def atomic_write_json(path: Path, data: Any) -> None:
    """Write via a temp file in the same directory and os.replace, so a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


@dataclass
class Progress:
    path: Path
    started_at: str = field(default_factory=now_iso)
    state: str = "running"
    stage: str = "starting"
    done: int = 0
    total: int = 0
    error: str | None = None
    tokens_per_s: float | None = None

    def update(self, state: str | None = None, done: int | None = None, total: int | None = None,
               error: str | None = None, stage: str | None = None, tokens_per_s: float | None = None) -> None:
        self.state = state or self.state
        self.stage = stage or self.stage
        self.done = self.done if done is None else done
        self.total = self.total if total is None else total
        self.error = error or self.error
        self.tokens_per_s = self.tokens_per_s if tokens_per_s is None else tokens_per_s
        payload: dict[str, Any] = {"state": self.state, "stage": self.stage, "done": self.done, "total": self.total,
                                   "tokensPerS": self.tokens_per_s, "startedAt": self.started_at,
                                   "updatedAt": now_iso()}
        if self.error is not None:
            payload["error"] = self.error
        atomic_write_json(self.path, payload)


class PredictionStore:
    """predictions.jsonl: one JSON object per line, written whole by a single thread."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> dict[SampleId, dict[str, Any]]:
        """Records by id. A torn last line (killed mid-write) is cut off first; other bad lines are errors."""
        if not self.path.exists():
            return {}
        data = self.path.read_bytes()
        complete = data.rfind(b"\n") + 1
        if complete < len(data):
            log.warning("%s: cutting a torn last line (%d bytes)", self.path.name, len(data) - complete)
            with self.path.open("r+b") as handle:
                handle.truncate(complete)
        records: dict[SampleId, dict[str, Any]] = {}
        for lineno, line in enumerate(data[:complete].decode("utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                records.setdefault(record["id"], record)
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise ValueError(f"{self.path}:{lineno} is not a prediction record: {exc}") from exc
        return records

    def append(self, record: dict[str, Any]) -> None:
        append_jsonl(self.path, record)


def append_jsonl(path: Path, record: dict[str, Any]) -> None:
    """One whole line per write, synced, so a crash can tear at most the last line."""
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Complete lines only: a torn last line from a crash is ignored."""
    if not path.exists():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines(keepends=True):
        if line.endswith("\n") and line.strip():
            rows.append(json.loads(line))
    return rows
