"""`python -m analysis import`: bring a run made outside this tool into the results folder as an imported run.

The folder it writes (`<study>/<phase>/<modelSlug>/<prompt>/imported-<sha8>/`) loads exactly like a native run
(analysis/runs.py): predictions.jsonl in the native record shape, emissions.csv as given, manifest.json with
`imported: true`. Every row that cannot be scored as given is reported by id, never dropped in silence.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import re
import sys
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import AnalysisError
from .metrics import classification
from .runs import atomic_write_bytes, json_bytes, read_dataset_samples, sha256_bytes

Json = dict[str, Any]

_TRUE = {"1", "true", "yes", "vulnerable"}
_FALSE = {"0", "false", "no", "benign", "safe"}
_SAFE_NAME = re.compile(r"^[A-Za-z0-9._-]+$")
_REPORT = "import-report.json"


class UsageError(Exception):
    """Input the import cannot use at all (exit 2)."""


@dataclass(frozen=True)
class Source:
    path: Path
    given: str  # the path as the user gave it (recorded, never resolved)
    kind: str  # predictions | emissions | metadata
    data: bytes

    @property
    def sha256(self) -> str:
        return sha256_bytes(self.data)


@dataclass(frozen=True)
class Mapping:
    idColumn: str | None
    lineColumn: str | None
    labelColumn: str | None
    predictionColumn: str
    promptTokensColumn: str | None
    completionTokensColumn: str | None


@dataclass
class Problems:
    labelMismatches: list[Json] = field(default_factory=list)
    unknownIds: list[Any] = field(default_factory=list)
    missingSamples: list[Any] = field(default_factory=list)
    duplicateIds: list[Any] = field(default_factory=list)
    unparseable: list[Any] = field(default_factory=list)
    rowsWithoutId: list[int] = field(default_factory=list)  # input line numbers
    invalidTokenCounts: list[Any] = field(default_factory=list)


# ---------------------------------------------------------------- command line


HELP = """\
Import a run made outside this tool (predictions, CodeCarbon emissions, metadata) as an imported run folder
<results-dir>/<study>/<phase>/<modelSlug>/<prompt>/imported-<sha8>/ that the packet and report analyse like a
native run (labelled "imported").

PATHS: files or folders. In a folder, files are recognised by name: *.jsonl or predictions*.csv = predictions,
emissions*.csv = CodeCarbon emissions (any version; energy summed over its rows), *.json = metadata. A .csv given
explicitly is predictions unless its name starts with "emissions". Exactly one predictions file is needed.

Metadata JSON (all optional): {"model": "org/name", "thinking": false, "prompt": "zero-shot",
"gpu": {"name": "NVIDIA H100 80GB HBM3", "count": 1}, "versions": {"vllm", "torch", "cuda", "nvidiaDriver",
"codecarbon"}, "dataCenter": "...", "sampling": {...}, "notes": "..."}. --model, --prompt, --thinking override it.

Scoring uses the dataset's label (the truth); a label column that disagrees is reported by id. Predictions
accepted: 1/0, true/false, yes/no, vulnerable/benign/safe (any case); anything else or empty is unparseable and
scored wrong. Unknown ids, missing samples and duplicate ids (the first row counts) are reported by id in the
printed JSON and in import-report.json. Missing samples are left out of the run (as a run with a sample limit
would be), not scored. Re-importing the same inputs gives the same folder with the same bytes.

Exit status: 0 imported (the report printed), 2 unusable input (message on stderr).
"""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m analysis import", description=HELP,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("paths", nargs="+", help="predictions / emissions / metadata files, or folders holding them")
    p.add_argument("--results-dir", required=True, type=Path, help="the results folder (holds <study>/)")
    p.add_argument("--study", required=True, help="study id (folder name under the results folder)")
    p.add_argument("--phase", required=True, help="phase id the run belongs to, e.g. phase2a")
    p.add_argument("--dataset", required=True, type=Path, help="the dataset JSONL (idx, target, commit_id)")
    p.add_argument("--model", help="model repo id, e.g. Qwen/Qwen3-30B-A3B-Instruct-2507 (overrides metadata)")
    p.add_argument("--prompt", help="prompt strategy name, e.g. zero-shot (overrides metadata)")
    p.add_argument("--thinking", action=argparse.BooleanOptionalAction, default=None,
                   help="whether the model ran in thinking mode (overrides metadata; default false)")
    ids = p.add_mutually_exclusive_group()
    ids.add_argument("--id-column", help="column holding the dataset's idx (default: id, else idx)")
    ids.add_argument("--line-column", help="column holding the sample's 1-based line number in the dataset file")
    p.add_argument("--label-column", help="column holding the label as the source recorded it (default: label, "
                   "else target; checked against the dataset, never used for scoring)")
    p.add_argument("--prediction-column", help="column holding the prediction (default: prediction)")
    p.add_argument("--prompt-tokens-column", help="column with prompt token counts (default: prompt_tokens if present)")
    p.add_argument("--completion-tokens-column",
                   help="column with completion token counts (default: completion_tokens if present)")
    return p


# ---------------------------------------------------------------- inputs


def kind_of(path: Path, explicit: bool) -> str | None:
    name = path.name.lower()
    if name.startswith("emissions") and name.endswith(".csv"):
        return "emissions"
    if name.endswith(".jsonl") or (name.endswith(".csv") and (explicit or name.startswith("predictions"))):
        return "predictions"
    if name.endswith(".json") and name not in ("manifest.json", _REPORT):
        return "metadata"
    return None


def collect_sources(paths: list[str]) -> tuple[list[Source], list[str]]:
    """The input files by kind, and the files of a folder that were not used (reported, not silently skipped)."""
    sources: list[Source] = []
    ignored: list[str] = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            for child in sorted(p for p in path.iterdir() if p.is_file()):
                kind = kind_of(child, explicit=False)
                child_given = str(Path(given) / child.name)
                if kind is None:
                    ignored.append(child_given)
                else:
                    sources.append(Source(child, child_given, kind, child.read_bytes()))
        elif path.is_file():
            kind = kind_of(path, explicit=True)
            if kind is None:
                raise UsageError(f"{given}: not a predictions (.jsonl/.csv), emissions (emissions*.csv) or metadata "
                                 "(.json) file")
            sources.append(Source(path, given, kind, path.read_bytes()))
        else:
            raise UsageError(f"{given}: no such file or folder")
    for kind, most in (("predictions", 1), ("emissions", 1), ("metadata", 1)):
        found = [s.given for s in sources if s.kind == kind]
        if len(found) > most:
            raise UsageError(f"more than one {kind} file: {', '.join(found)} (give the one to import)")
    if not any(s.kind == "predictions" for s in sources):
        raise UsageError("no predictions file (*.jsonl, predictions*.csv, or a .csv named explicitly)")
    return sources, ignored


def _text(source: Source) -> str:
    try:
        return source.data.decode("utf-8-sig")  # spreadsheets write a BOM
    except UnicodeDecodeError as exc:
        raise UsageError(f"{source.given}: not UTF-8 text: {exc}") from exc


def read_rows(source: Source) -> tuple[list[tuple[int, Json]], list[str]]:
    """(input line number, row) pairs and the columns seen, from a CSV or JSONL predictions file."""
    text = _text(source)
    if source.path.name.lower().endswith(".csv"):
        try:
            reader = csv.DictReader(io.StringIO(text, newline=""))
            rows = [(reader.line_num, dict(row)) for row in reader]
        except csv.Error as exc:
            raise UsageError(f"{source.given}: not a readable CSV: {exc}") from exc
        return rows, list(reader.fieldnames or [])
    rows, columns = [], {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UsageError(f"{source.given}:{lineno}: invalid JSON: {exc}") from exc
        if not isinstance(row, dict):
            raise UsageError(f"{source.given}:{lineno}: expected a JSON object per line")
        rows.append((lineno, row))
        columns.update(dict.fromkeys(row))
    return rows, list(columns)


def read_metadata(source: Source | None) -> Json:
    if source is None:
        return {}
    try:
        data = json.loads(_text(source))
    except json.JSONDecodeError as exc:
        raise UsageError(f"{source.given}: metadata is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise UsageError(f"{source.given}: metadata must be a JSON object")
    return data


def _float(text: str | None) -> float | None:
    try:
        return float(text) if text not in (None, "") else None
    except ValueError:
        return None


def read_emissions(source: Source | None) -> Json:
    """CodeCarbon's version(s), its row count and energy summed over the rows (any CodeCarbon version)."""
    if source is None:
        return {"rows": 0, "versions": [], "energyKwh": None, "columns": []}
    try:
        reader = csv.DictReader(io.StringIO(_text(source), newline=""))
        rows = list(reader)
    except csv.Error as exc:
        raise UsageError(f"{source.given}: not a readable CSV: {exc}") from exc
    if "energy_consumed" not in (reader.fieldnames or []):
        raise UsageError(f"{source.given}: no energy_consumed column: not a CodeCarbon emissions file")
    sums: Json = {}
    for column in ("energy_consumed", "gpu_energy", "cpu_energy", "ram_energy", "duration"):
        values = [v for v in (_float(row.get(column)) for row in rows) if v is not None]
        sums[column] = sum(values) if values else None
    return {"rows": len(rows), "versions": sorted({(r.get("codecarbon_version") or "").strip() for r in rows} - {""}),
            "energyKwh": sums, "columns": list(reader.fieldnames or []),
            "single": {c: _single(rows, c) for c in ("country_iso_code", "tracking_mode", "gpu_model", "gpu_count")}}


def _single(rows: list[dict[str, str]], column: str) -> str | None:
    values = {(r.get(column) or "").strip() for r in rows} - {""}
    return next(iter(values)) if len(values) == 1 else None


def dataset_lines(path: Path) -> dict[int, Any]:
    """1-based physical line number of the dataset file -> that row's idx (blank or bad lines map to nothing)."""
    lines: dict[int, Any] = {}
    for lineno, line in enumerate(path.read_bytes().decode("utf-8", errors="replace").splitlines(), start=1):
        try:
            row = json.loads(line) if line.strip() else None
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and "idx" in row:
            lines[lineno] = row["idx"]
    return lines


# ---------------------------------------------------------------- mapping and values


def _pick(given: str | None, defaults: tuple[str, ...], columns: list[str], what: str,
          required: bool) -> str | None:
    """An explicit column must exist; a default is the first one present (or none, when not required)."""
    if given is not None:
        if given not in columns:
            raise UsageError(f"the predictions file has no {what} column {given!r} (columns: {', '.join(columns)})")
        return given
    found = next((c for c in defaults if c in columns), None)
    if found is None and required:
        raise UsageError(f"the predictions file has no {what} column ({' or '.join(defaults)}; columns: "
                         f"{', '.join(columns)}): pass the column's name")
    return found


def resolve_mapping(args: argparse.Namespace, columns: list[str]) -> Mapping:
    if args.line_column is not None:
        id_column, line_column = None, _pick(args.line_column, (), columns, "line-number", True)
    else:
        try:
            id_column, line_column = _pick(args.id_column, ("id", "idx"), columns, "id", True), None
        except UsageError as exc:
            raise UsageError(f"{exc} (or --line-column for dataset line numbers)") from exc
    return Mapping(
        idColumn=id_column, lineColumn=line_column,
        labelColumn=_pick(args.label_column, ("label", "target"), columns, "label", False),
        predictionColumn=str(_pick(args.prediction_column, ("prediction",), columns, "prediction", True)),
        promptTokensColumn=_pick(args.prompt_tokens_column, ("prompt_tokens",), columns, "prompt-tokens", False),
        completionTokensColumn=_pick(args.completion_tokens_column, ("completion_tokens",), columns,
                                     "completion-tokens", False),
    )


def parse_binary(value: Any) -> int | None:
    """1/0, true/false, yes/no, vulnerable/benign/safe (any case); anything else is unparseable (None)."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float)):
        return int(value) if value in (0, 1) else None
    if isinstance(value, str):
        text = value.strip().lower()
        return 1 if text in _TRUE else 0 if text in _FALSE else None
    return None


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _tokens(value: Any) -> tuple[int | None, bool]:
    """(count, valid): empty is no count; anything but a non-negative integer is invalid."""
    if _blank(value):
        return None, True
    if isinstance(value, bool):
        return None, False
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None, False
    return (int(number), True) if number >= 0 and number.is_integer() else (None, False)


# ---------------------------------------------------------------- scoring the rows


def build_records(rows: list[tuple[int, Json]], mapping: Mapping, samples: list[Json],
                  lines: dict[int, Any]) -> tuple[list[Json], Problems]:
    """Native prediction records, in dataset order, and every problem by id."""
    by_text = {str(s["id"]): s for s in samples}
    problems = Problems()
    found: dict[Any, Json] = {}
    for lineno, row in rows:
        raw_id = row.get(mapping.lineColumn or mapping.idColumn or "")
        if _blank(raw_id):
            problems.rowsWithoutId.append(lineno)
            continue
        sample = _sample_for(raw_id, mapping, by_text, lines)
        if sample is None:
            problems.unknownIds.append(raw_id)
            continue
        sid = sample["id"]
        if sid in found:
            if sid not in problems.duplicateIds:
                problems.duplicateIds.append(sid)  # the first row counts, as in the harness
            continue
        found[sid] = _record(row, sample, mapping, problems)
    problems.missingSamples = [s["id"] for s in samples if s["id"] not in found]
    return [found[s["id"]] for s in samples if s["id"] in found], problems


def _sample_for(raw_id: Any, mapping: Mapping, by_text: dict[str, Json], lines: dict[int, Any]) -> Json | None:
    if mapping.lineColumn is None:
        return by_text.get(str(raw_id).strip())
    number, valid = _tokens(raw_id)
    idx = lines.get(number) if valid and number is not None else None
    return by_text.get(str(idx)) if idx is not None else None


def _record(row: Json, sample: Json, mapping: Mapping, problems: Problems) -> Json:
    sid = sample["id"]
    raw_prediction = row.get(mapping.predictionColumn)
    prediction = parse_binary(raw_prediction)
    if prediction is None:
        problems.unparseable.append(sid)
    raw_label = row.get(mapping.labelColumn) if mapping.labelColumn else None
    raw_label = None if _blank(raw_label) else raw_label
    if raw_label is not None and parse_binary(raw_label) != sample["label"]:
        problems.labelMismatches.append({"id": sid, "datasetLabel": sample["label"], "sourceLabel": raw_label})
    counts = {}
    for key, column in (("prompt_tokens", mapping.promptTokensColumn),
                        ("completion_tokens", mapping.completionTokensColumn)):
        counts[key], valid = _tokens(row.get(column)) if column else (None, True)
        if not valid and sid not in problems.invalidTokenCounts:
            problems.invalidTokenCounts.append(sid)
    return {"id": sid, "label": sample["label"], "prediction": prediction, "parsed": prediction is not None,
            "finish_reason": None, **counts, "latency_ms": None, "error": None,
            "source_label": raw_label, "source_prediction": raw_prediction}


# ---------------------------------------------------------------- the run folder


def model_slug(repo_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", repo_id.rstrip("/").rsplit("/", 1)[-1])


def _name(value: Any, what: str) -> str:
    if not isinstance(value, str) or not _SAFE_NAME.match(value) or value in (".", ".."):
        raise UsageError(f"{what} must be a name of letters, digits, '.', '_' or '-', got {value!r}")
    return value


def _identity(args: argparse.Namespace, metadata: Json) -> tuple[str, str, bool]:
    model = args.model or metadata.get("model") or metadata.get("repoId") or metadata.get("modelRepoId")
    if isinstance(model, dict):
        model = model.get("repoId")
    if not isinstance(model, str) or not model.strip():
        raise UsageError("no model: pass --model <repo id> or put \"model\" in the metadata file")
    prompt = args.prompt or metadata.get("prompt") or metadata.get("promptStrategy")
    if isinstance(prompt, dict):
        prompt = prompt.get("name")
    if prompt is None:
        raise UsageError("no prompt strategy: pass --prompt <name> or put \"prompt\" in the metadata file")
    thinking = args.thinking if args.thinking is not None else metadata.get("thinking", False)
    if not isinstance(thinking, bool):
        raise UsageError(f"metadata `thinking` must be true or false, got {thinking!r}")
    return model.strip(), _name(prompt, "prompt"), thinking


def import_hash(sources: list[Source], dataset_sha: str, identity: tuple[str, str, bool], mapping: Mapping,
                study: str, phase: str) -> str:
    """Of the inputs' bytes and how they are read (not of their paths): the same inputs give the same folder."""
    basis = {"sources": sorted([s.kind, s.sha256] for s in sources), "dataset": dataset_sha,
             "identity": list(identity), "mapping": asdict(mapping), "study": study, "phase": phase}
    return sha256_bytes(json.dumps(basis, sort_keys=True).encode("utf-8"))


def _imported_at(run_dir: Path) -> str:
    """The first import's time stamp when this folder exists already: a re-import rewrites identical bytes."""
    try:
        previous = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))
        stamp = previous["import"]["importedAt"]
        if isinstance(stamp, str):
            return stamp
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _versions(metadata: Json, emissions: Json) -> Json:
    given = metadata.get("versions") if isinstance(metadata.get("versions"), dict) else {}
    codecarbon = given.get("codecarbon") or (" + ".join(emissions["versions"]) or None)
    return {"vllm": given.get("vllm"), "vllmPackage": None, "torch": given.get("torch"),
            "cudaRuntime": given.get("cuda"), "cudaDriver": None, "nvidiaDriver": given.get("nvidiaDriver"),
            "codecarbon": codecarbon, "huggingfaceHub": None, "hfXet": None, "python": None}


def _gpu(metadata: Json, emissions: Json) -> tuple[str | None, int]:
    gpu = metadata.get("gpu") if isinstance(metadata.get("gpu"), dict) else {}
    single = emissions.get("single") or {}
    name = gpu.get("name") or single.get("gpu_model")
    count = gpu.get("count")
    if not isinstance(count, int) or isinstance(count, bool):
        count = int(_float(single.get("gpu_count")) or 0) if name else 0
    return (str(name) if name else None), count


def build_manifest(*, study: str, phase: str, identity: tuple[str, str, bool], run_id: str, dataset_sha: str,
                   metadata: Json, emissions: Json, sources: list[Source], mapping: Mapping, problems: Problems,
                   imported_at: str, dataset_given: str) -> Json:
    model, prompt, thinking = identity
    gpu_name, gpu_count = _gpu(metadata, emissions)
    versions = _versions(metadata, emissions)
    cc_version = " + ".join(emissions["versions"]) or None
    has_emissions = any(s.kind == "emissions" for s in sources)
    single = emissions.get("single") or {}
    sampling = metadata.get("sampling") if isinstance(metadata.get("sampling"), dict) else {}
    return {
        "schemaVersion": 1, "imported": True, "simulated": False, "study": study, "phase": phase,
        "model": {"repoId": model, "revision": None, "commitSha": None, "thinking": thinking, "reasoningParser": None},
        "prompt": {"name": prompt, "templateSha256": None, "fewShotSha256": None},
        "datasetSha256": dataset_sha, "runId": run_id, "workflowId": None,
        "pod": {"provider": "imported", "podId": None, "gpuTypeId": gpu_name, "gpuCount": gpu_count,
                "dataCenterId": metadata.get("dataCenter"), "cloud": None, "image": None, "costPerHr": 0},
        "candidatesTried": [],
        "vllm": {"version": versions["vllm"], "dtype": None, "maxModelLen": None, "maxNumSeqs": None,
                 "maxNumBatchedTokens": None, "seed": None, "gpuMemoryUtilization": None, "tensorParallelSize": None,
                 "enablePrefixCaching": None, "reportedVersion": None, "commandLine": None, "loadTimeMs": None},
        "sampling": {k: sampling.get(k) for k in ("temperature", "topP", "topK", "minP", "maxTokens", "seed")},
        "harness": None,
        "codecarbon": {"version": cc_version, "countryIsoCode": single.get("country_iso_code"),
                       "measurePowerSecs": None, "trackingMode": single.get("tracking_mode")},
        "environment": None,
        "timings": {"finishedAt": imported_at},
        "cost": {"podCostSoFarUsd": 0, "note": "imported run: pod cost not known to this tool"},
        "download": None, "interruptions": [],
        "hardware": {"versions": versions,
                     "gpu": {"present": gpu_name is not None, "count": gpu_count, "name": gpu_name,
                             "memoryTotalMiB": None, "powerLimitW": None},
                     "note": "imported: versions and GPU as the metadata file (or emissions.csv) states them"
                     if gpu_name else "imported: no GPU named in the metadata or emissions.csv"},
        "energy": {"comparable": has_emissions,
                   "reasons": [] if has_emissions else ["imported without emissions.csv: no energy figures"]},
        "import": {"importedAt": imported_at, "datasetPath": dataset_given,
                   "sources": [{"path": s.given, "sha256": s.sha256, "kind": s.kind} for s in sources],
                   "mapping": asdict(mapping), "codecarbonVersion": cc_version, "emissionsRows": emissions["rows"],
                   "emissionsEnergyKwh": emissions["energyKwh"], "metadata": metadata,
                   "notes": metadata.get("notes"), "problems": asdict(problems)},
    }


def _warnings(metadata: Json, emissions: Json, samples_info: Json, study_dir: Path, ignored: list[str],
              problems: Problems, mapping: Mapping) -> list[str]:
    warnings = [f"not used (not a predictions, emissions or metadata file): {path}" for path in ignored]
    declared = (metadata.get("versions") or {}).get("codecarbon") if isinstance(metadata.get("versions"), dict) \
        else None
    if declared and emissions["versions"] and declared not in emissions["versions"]:
        warnings.append(f"metadata says CodeCarbon {declared}, emissions.csv says {', '.join(emissions['versions'])}")
    if emissions["rows"] > 1:
        warnings.append(f"emissions.csv has {emissions['rows']} rows: energy is summed over all of them")
    if emissions["rows"] and not emissions["versions"]:
        warnings.append("emissions.csv has no codecarbon_version value: CodeCarbon version unknown")
    if mapping.labelColumn is None:
        warnings.append("no label column: the source's labels could not be checked against the dataset")
    saved = study_dir / "samples.json"
    if saved.exists():
        try:
            recorded = json.loads(saved.read_text(encoding="utf-8")).get("datasetSha256")
        except (OSError, ValueError, AttributeError):
            recorded = None
        if recorded and recorded != samples_info["datasetSha256"]:
            warnings.append(f"{saved} was written from another dataset (sha256 {recorded}); this import used "
                            f"{samples_info['datasetSha256']}")
    if samples_info["duplicateIds"]:
        warnings.append(f"the dataset repeats ids (its first row counts): {samples_info['duplicateIds']}")
    if problems.rowsWithoutId:
        warnings.append(f"rows without an id at input lines {problems.rowsWithoutId}")
    return warnings


def run_import(args: argparse.Namespace) -> Json:
    study, phase = _name(args.study, "--study"), _name(args.phase, "--phase")
    sources, ignored = collect_sources(args.paths)
    by_kind = {s.kind: s for s in sources}
    try:
        samples_info = read_dataset_samples(args.dataset)
    except AnalysisError as exc:
        raise UsageError(f"dataset unreadable: {exc}") from exc
    metadata = read_metadata(by_kind.get("metadata"))
    emissions = read_emissions(by_kind.get("emissions"))
    rows, columns = read_rows(by_kind["predictions"])
    mapping = resolve_mapping(args, columns)
    identity = _identity(args, metadata)
    records, problems = build_records(rows, mapping, samples_info["samples"],
                                      dataset_lines(args.dataset) if mapping.lineColumn else {})
    if not records:
        raise UsageError("no row of the predictions file matches a dataset sample: check --id-column/--line-column "
                         f"(unknown ids: {problems.unknownIds[:10]})")
    sha8 = import_hash(sources, samples_info["datasetSha256"], identity, mapping, study, phase)[:8]
    run_id = f"imported-{sha8}"
    results_dir: Path = args.results_dir
    rel = Path(study) / phase / model_slug(identity[0]) / identity[1] / run_id
    run_dir = results_dir / rel
    imported_at = _imported_at(run_dir)
    manifest = build_manifest(study=study, phase=phase, identity=identity, run_id=run_id,
                              dataset_sha=samples_info["datasetSha256"], metadata=metadata, emissions=emissions,
                              sources=sources, mapping=mapping, problems=problems, imported_at=imported_at,
                              dataset_given=str(args.dataset))
    report = {
        "ok": True, "runDir": rel.as_posix(), "runId": run_id, "model": identity[0], "prompt": identity[1],
        "thinking": identity[2], "study": study, "phase": phase, "importedAt": imported_at,
        "counts": {"inputRows": len(rows), "imported": len(records), "datasetSamples": len(samples_info["samples"]),
                   **{k: len(v) for k, v in asdict(problems).items()}},
        "problems": asdict(problems), "mapping": asdict(mapping), "sources": manifest["import"]["sources"],
        "codecarbonVersion": manifest["import"]["codecarbonVersion"], "emissionsRows": emissions["rows"],
        "emissionsEnergyKwh": emissions["energyKwh"], "metrics": classification(records),
        "warnings": _warnings(metadata, emissions, samples_info, results_dir / study, ignored, problems, mapping),
    }
    lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    atomic_write_bytes(run_dir / "predictions.jsonl", lines.encode("utf-8"))
    if "emissions" in by_kind:
        atomic_write_bytes(run_dir / "emissions.csv", by_kind["emissions"].data)  # as given, byte for byte
    atomic_write_bytes(run_dir / "manifest.json", json_bytes(manifest))
    atomic_write_bytes(run_dir / _REPORT, json_bytes(report))
    return report


def main(argv: list[str]) -> int:
    """argv after `import` (as analysis/__main__.py passes it)."""
    args = parser().parse_args(argv)
    try:
        report = run_import(args)
    except (UsageError, AnalysisError, OSError) as exc:
        print(f"analysis import: error: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(json_bytes(report).decode("utf-8"))
    return 0
