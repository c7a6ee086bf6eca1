"""Verify a downloaded model directory and write the `.complete` marker.

Run on the pod after `hf download`:

    python3 -m harness.verify_model --model-dir D --expected E.json [--sha256]

E.json is written by the orchestrator from the Hub's model metadata, fetched once per session (no secrets):
`{"repo", "revision", "commitSha", "files": [{"path", "bytes", "sha256" (LFS files) or null}]}`. Without
`--expected` the metadata comes from the Hub itself (`--repo R --revision REV`, huggingface_hub), for use by hand.

Checks, cheapest first: every file the Hub lists is present with the Hub's size; every safetensors file's header
agrees with its size (a truncated shard is caught in seconds); every shard named by model.safetensors.index.json
exists and is listed by the Hub; with --sha256, every file the Hub gives a sha256 for hashes to it. A file that fails
is deleted, with hf's local-dir metadata for it, so the next `hf download` fetches it again instead of trusting it.
Prints one JSON object; exit 0 only when every check passed and the marker was written.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import struct
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MARKER = ".complete"
INDEX = "model.safetensors.index.json"
HASH_CHUNK = 8 * 1024 * 1024


@dataclass(frozen=True)
class HubFile:
    path: str
    size: int | None
    sha256: str | None = None


@dataclass(frozen=True)
class Expected:
    repo: str
    revision: str
    commit: str
    files: list[HubFile]


def safetensors_consistent(path: Path) -> bool:
    """A complete file is exactly 8 + header length + the largest tensor end offset bytes long."""
    size = path.stat().st_size
    if size < 8:
        return False
    with path.open("rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        if n > size - 8:
            return False
        try:
            header = json.loads(f.read(n))
            ends = [int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"]
        except (ValueError, TypeError, KeyError, IndexError, AttributeError):
            return False
    return size == 8 + n + (max(ends) if ends else 0)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def hub_expected(repo: str, revision: str) -> Expected:
    # Imported here so the offline checks stay usable without huggingface_hub.
    from huggingface_hub import HfApi

    info = HfApi().model_info(repo, revision=revision, files_metadata=True)
    files = [HubFile(s.rfilename, s.size, s.lfs.sha256 if s.lfs else None) for s in (info.siblings or [])]
    return Expected(repo, revision, str(info.sha), files)


def load_expected(path: Path) -> Expected:
    raw: dict[str, Any] = json.loads(path.read_text())
    files = [HubFile(str(f["path"]), f.get("bytes"), f.get("sha256")) for f in raw["files"]]
    return Expected(str(raw["repo"]), str(raw["revision"]), str(raw["commitSha"]), files)


def discard(model_dir: Path, rel: str) -> None:
    """Delete a bad file and hf's local-dir metadata for it (which would otherwise let hf skip the file)."""
    (model_dir / rel).unlink(missing_ok=True)
    (model_dir / ".cache" / "huggingface" / "download" / f"{rel}.metadata").unlink(missing_ok=True)


def check_file(model_dir: Path, hf: HubFile, sha256: bool) -> str | None:
    """The problem with one file (None when it passes); the caller deletes files with a problem, except missing ones."""
    p = model_dir / hf.path
    size = p.stat().st_size
    if hf.size is not None and size != hf.size:
        return f"{hf.path}: {size} bytes on disk, the Hub says {hf.size}"
    if p.suffix == ".safetensors" and not safetensors_consistent(p):
        return f"{hf.path}: safetensors header does not match the file size (truncated or corrupt)"
    if sha256 and hf.sha256 and (got := sha256_of(p)) != hf.sha256:
        return f"{hf.path}: sha256 {got}, the Hub says {hf.sha256}"
    return None


def index_problems(model_dir: Path, listed: set[str]) -> tuple[list[str], bool]:
    """Shards named by model.safetensors.index.json that the Hub does not list (listed ones are checked as files);
    True when the index itself is unreadable."""
    index = model_dir / INDEX
    if not index.is_file():
        return [], False
    try:
        shards = set(json.loads(index.read_text())["weight_map"].values())
    except (ValueError, KeyError, TypeError, AttributeError):
        return [f"{INDEX} is not a valid index (no weight_map)"], True
    return [f"{INDEX} names {s}, which the Hub does not list" for s in sorted(shards - listed)], False


def verify(model_dir: Path, expected: Expected, sha256: bool = False) -> dict[str, object]:
    problems: list[str] = []
    deleted: list[str] = []
    for hf in expected.files:
        if not (model_dir / hf.path).is_file():
            problems.append(f"missing {hf.path}")
            continue
        problem = check_file(model_dir, hf, sha256)
        if problem is not None:
            problems.append(problem)
            discard(model_dir, hf.path)
            deleted.append(hf.path)
    listed = {f.path for f in expected.files}
    index_issues, bad_index = index_problems(model_dir, listed)
    problems += index_issues
    if bad_index and INDEX not in deleted:
        discard(model_dir, INDEX)
        deleted.append(INDEX)
    files = [{"path": f.path, "bytes": (model_dir / f.path).stat().st_size}
             for f in expected.files if (model_dir / f.path).is_file()]
    sha256_verified = sha256 and not problems
    result: dict[str, object] = {
        "ok": not problems,
        "commitSha": expected.commit,
        "problems": problems,
        "deleted": deleted,
        "files": files,
        "sha256Verified": sha256_verified,
    }
    if not problems:
        marker = {"repo": expected.repo, "revision": expected.revision, "commitSha": expected.commit, "files": files,
                  "sha256Verified": sha256_verified, "verifiedAt": time.time()}
        tmp = model_dir / f"{MARKER}.tmp"
        tmp.write_text(json.dumps(marker))
        os.replace(tmp, model_dir / MARKER)
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python3 -m harness.verify_model", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-dir", required=True, type=Path)
    ap.add_argument("--expected", type=Path, help="the Hub's file list as the orchestrator fetched it")
    ap.add_argument("--repo", help="without --expected: ask the Hub for this repo's files")
    ap.add_argument("--revision", help="without --expected: the revision to ask the Hub about")
    ap.add_argument("--sha256", action="store_true", help="also hash every file the Hub gives a sha256 for")
    args = ap.parse_args(argv)
    if args.expected is not None:
        expected = load_expected(args.expected)
    elif args.repo and args.revision:
        expected = hub_expected(args.repo, args.revision)
    else:
        ap.error("give --expected, or --repo and --revision")
    (args.model_dir / MARKER).unlink(missing_ok=True)  # a marker only ever describes the last passing check
    result = verify(args.model_dir, expected, sha256=args.sha256)
    print(json.dumps(result))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
