"""Run folders on disk: loading, run selection per (phase, model, prompt), samples.json."""

from __future__ import annotations

import csv
import hashlib
import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import AnalysisError

SampleId = int | str
Json = dict[str, Any]

MANIFEST = "manifest.json"
PREDICTIONS = "predictions.jsonl"
METRICS = "metrics.json"
EMISSIONS = "emissions.csv"
SAMPLES = "samples.json"


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Temp file in the same folder, then os.replace: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def json_bytes(data: Any) -> bytes:
    """The analysis's one JSON form: indent 2, sorted keys, no NaN (NaN and infinities become null)."""
    return (json.dumps(clean_json(data), indent=2, sort_keys=True, allow_nan=False, ensure_ascii=False)
            + "\n").encode("utf-8")


def clean_json(value: Any) -> Any:
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else None
    if isinstance(value, dict):
        return {str(k): clean_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean_json(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return clean_json(value.item())
    return value


def read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise AnalysisError(f"{what} {path} does not exist") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise AnalysisError(f"cannot read {what} {path}: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise AnalysisError(f"{what} {path} is not valid JSON: {exc}") from exc


def id_key(sample_id: SampleId) -> tuple[int, int | str]:
    """Sort key for ids that may mix ints and strings (ints first)."""
    return (0, sample_id) if isinstance(sample_id, int) else (1, str(sample_id))


def valid_id(value: Any) -> bool:
    return isinstance(value, (int, str)) and not isinstance(value, bool)


def read_predictions(path: Path) -> tuple[list[Json], list[SampleId]]:
    """Unique records in file order (the first of an id counts) and the duplicate ids.

    A torn last line (no trailing newline: the harness was killed mid-write) is ignored; any other bad line is an error.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise AnalysisError(f"{path} does not exist") from exc
    complete = data.rfind(b"\n") + 1
    records: dict[SampleId, Json] = {}
    duplicates: list[SampleId] = []
    for lineno, line in enumerate(data[:complete].decode("utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise AnalysisError(f"{path}:{lineno} is not valid JSON: {exc}") from exc
        if not isinstance(record, dict) or not valid_id(record.get("id")) or record.get("label") not in (0, 1) \
                or isinstance(record.get("label"), bool):
            raise AnalysisError(f"{path}:{lineno} is not a prediction record (needs `id` and `label` 0/1)")
        if record["id"] in records:
            if record["id"] not in duplicates:
                duplicates.append(record["id"])
            continue
        records[record["id"]] = record
    return list(records.values()), duplicates


def read_emissions(path: Path) -> list[dict[str, str]] | None:
    if not path.exists():
        return None
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            return list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise AnalysisError(f"cannot read {path}: {exc}") from exc


@dataclass
class Run:
    """One run folder, loaded. `dir` is relative to the results folder (`<study>/<phase>/<slug>/<prompt>/<runId>`)."""

    dir: str
    path: Path
    manifest: Json
    records: list[Json]
    duplicate_ids: list[SampleId]
    metrics: Json | None
    emissions: list[dict[str, str]] | None
    superseded: list[str] = field(default_factory=list)

    @property
    def phase(self) -> str:
        return str(self.manifest.get("phase") or "")

    @property
    def model(self) -> str:
        return str(_get(self.manifest, "model", "repoId") or "")

    @property
    def thinking(self) -> bool | None:
        value = _get(self.manifest, "model", "thinking")
        return value if isinstance(value, bool) else None

    @property
    def prompt(self) -> str:
        return str(_get(self.manifest, "prompt", "name") or "")

    @property
    def run_id(self) -> str:
        return str(self.manifest.get("runId") or self.path.name)

    @property
    def imported(self) -> bool:
        return self.manifest.get("imported") is True

    @property
    def simulated(self) -> bool:
        return self.manifest.get("simulated") is True

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.phase, self.model, self.prompt)

    @property
    def finished_at(self) -> datetime | None:
        """When the run ended: timings.finishedAt (native), else the import's own time stamp (imported)."""
        stamp = _get(self.manifest, "timings", "finishedAt")
        if stamp is None and self.imported:
            imp = self.manifest.get("import") or {}
            stamp = next((imp.get(k) for k in ("importedAt", "at", "finishedAt") if isinstance(imp, dict)
                          and imp.get(k)), None)
        if not isinstance(stamp, str):
            return None
        try:
            parsed = datetime.fromisoformat(stamp)
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)

    @property
    def labels(self) -> dict[SampleId, int]:
        return {r["id"]: int(r["label"]) for r in self.records}


def _get(data: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def resolve_run_dir(results_dir: Path, run_dir: str | Path) -> Path:
    path = Path(run_dir)
    path = path if path.is_absolute() else results_dir / path
    return path.resolve()


def relative_dir(results_dir: Path, path: Path) -> str:
    try:
        return path.resolve().relative_to(results_dir.resolve()).as_posix()
    except ValueError:
        return path.resolve().as_posix()  # outside the results folder: keep it absolute rather than guess


def load_run(results_dir: Path, run_dir: str | Path) -> Run:
    path = resolve_run_dir(results_dir, run_dir)
    if not path.is_dir():
        raise AnalysisError(f"run folder {path} does not exist")
    manifest = read_json(path / MANIFEST, "manifest")
    if not isinstance(manifest, dict) or not isinstance(manifest.get("phase"), str) \
            or not isinstance(_get(manifest, "model", "repoId"), str) \
            or not isinstance(_get(manifest, "prompt", "name"), str):
        raise AnalysisError(f"{path / MANIFEST} lacks phase, model.repoId or prompt.name")
    records, duplicates = read_predictions(path / PREDICTIONS)
    metrics_path = path / METRICS
    metrics = read_json(metrics_path, "metrics") if metrics_path.exists() else None
    if metrics is not None and not isinstance(metrics, dict):
        raise AnalysisError(f"{metrics_path} is not a JSON object")
    return Run(dir=relative_dir(results_dir, path), path=path, manifest=manifest, records=records,
               duplicate_ids=duplicates, metrics=metrics, emissions=read_emissions(path / EMISSIONS))


def discover_runs(results_dir: Path, study: str) -> tuple[list[Run], list[str]]:
    """Every run folder of the study with a manifest (`<study>/<phase>/<slug>/<prompt>/<runId>/manifest.json`).

    A folder whose files cannot be read is left out with a warning rather than failing the whole analysis: one broken
    transfer must not hide every other run.
    """
    runs: list[Run] = []
    warnings: list[str] = []
    for manifest in sorted((results_dir / study).glob(f"*/*/*/*/{MANIFEST}")):
        try:
            runs.append(load_run(results_dir, manifest.parent))
        except AnalysisError as exc:
            warnings.append(f"left out {relative_dir(results_dir, manifest.parent)}: {exc}")
    return runs, warnings


def _recency(run: Run) -> tuple[datetime, str]:
    return (run.finished_at or datetime.min.replace(tzinfo=UTC), run.dir)


def select_runs(runs: list[Run], chosen: dict[str, list[str]] | None = None) -> list[Run]:
    """One run per (phase, model, prompt): a dir named in `chosen[phase]`, else the latest native run, else the latest
    imported one. The others of the key go to the winner's `superseded` (never averaged in)."""
    chosen = chosen or {}
    by_key: dict[tuple[str, str, str], list[Run]] = {}
    for run in runs:
        by_key.setdefault(run.key, []).append(run)
    selected: list[Run] = []
    for key in sorted(by_key):
        group = by_key[key]
        named = [r for r in group if r.dir in set(chosen.get(key[0], []))]
        native = [r for r in group if not r.imported]
        pool = named or native or group
        winner = max(pool, key=_recency)
        winner.superseded = sorted(r.dir for r in group if r is not winner)
        selected.append(winner)
    return selected


def read_dataset_samples(dataset_path: Path) -> Json:
    """samples.json's content from the dataset JSONL: ids (`idx`), labels (`target`), commits (`commit_id`)."""
    try:
        data = dataset_path.read_bytes()
    except FileNotFoundError as exc:
        raise AnalysisError(f"dataset {dataset_path} does not exist") from exc
    except OSError as exc:
        raise AnalysisError(f"cannot read dataset {dataset_path}: {exc}") from exc
    samples: dict[SampleId, Json] = {}
    duplicates: list[SampleId] = []
    for lineno, line in enumerate(data.decode("utf-8", errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"dataset {dataset_path}:{lineno}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise AnalysisError(f"{where}: invalid JSON: {exc}") from exc
        if not isinstance(row, dict) or not valid_id(row.get("idx")):
            raise AnalysisError(f"{where}: `idx` must be an integer or string")
        target = row.get("target")
        if isinstance(target, bool) or target not in (0, 1):
            raise AnalysisError(f"{where}: `target` must be 0 or 1, got {target!r}")
        commit = row.get("commit_id")
        if row["idx"] in samples:
            if row["idx"] not in duplicates:
                duplicates.append(row["idx"])  # the first row wins, as in the harness
            continue
        samples[row["idx"]] = {"id": row["idx"], "label": int(target),
                               "commit": commit if isinstance(commit, str) and commit else None}
    if not samples:
        raise AnalysisError(f"dataset {dataset_path} has no rows")
    return {"datasetPath": str(dataset_path), "datasetSha256": sha256_bytes(data),
            "samples": list(samples.values()), "duplicateIds": duplicates}


def write_samples(results_dir: Path, study: str, dataset_path: Path) -> Json:
    content = read_dataset_samples(dataset_path)
    # Dataset order matters (pairs, bootstrap order): keep the list as read, only the keys are sorted.
    atomic_write_bytes(results_dir / study / SAMPLES, json_bytes(content))
    return content


def read_samples(results_dir: Path, study: str) -> Json | None:
    path = results_dir / study / SAMPLES
    if not path.exists():
        return None
    content = read_json(path, "samples file")
    if not isinstance(content, dict) or not isinstance(content.get("samples"), list):
        raise AnalysisError(f"{path} has no `samples` list")
    return content
