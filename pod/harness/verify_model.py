"""Verify a downloaded model directory against the Hub and write the `.complete` marker.

Run on the pod after `hf download`: `python3 -m harness.verify_model --model-dir D --repo R --revision REV`.
Checks, cheapest first: every shard named by model.safetensors.index.json exists; every safetensors file's
header agrees with its size; every file's size equals the Hub's. A file that fails is deleted so the next
download fetches it again. Prints one JSON object; exit 0 only when the marker was written.
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import sys
import time
from dataclasses import dataclass
from pathlib import Path

MARKER = ".complete"


@dataclass(frozen=True)
class HubFile:
    path: str
    size: int | None


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
        except ValueError:
            return False
    ends = [v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"]
    return size == 8 + n + (max(ends) if ends else 0)


def hub_files(repo: str, revision: str) -> tuple[str, list[HubFile]]:
    # Imported here so the structural checks stay usable without huggingface_hub.
    from huggingface_hub import HfApi

    info = HfApi().model_info(repo, revision=revision, files_metadata=True)
    files = [HubFile(s.rfilename, s.size) for s in (info.siblings or [])]
    return str(info.sha), files


def verify(model_dir: Path, repo: str, revision: str) -> dict[str, object]:
    commit, files = hub_files(repo, revision)
    problems: list[str] = []
    bad: list[Path] = []
    for hf in files:
        p = model_dir / hf.path
        if not p.is_file():
            problems.append(f"missing {hf.path}")
        elif hf.size is not None and p.stat().st_size != hf.size:
            problems.append(f"{hf.path}: {p.stat().st_size} bytes on disk, the Hub says {hf.size}")
            bad.append(p)
        elif p.suffix == ".safetensors" and not safetensors_consistent(p):
            problems.append(f"{hf.path}: safetensors header does not match the file size (truncated or corrupt)")
            bad.append(p)
    index = model_dir / "model.safetensors.index.json"
    if index.is_file():
        shards = set(json.loads(index.read_text())["weight_map"].values())
        problems += [f"index names {s}, which is missing" for s in sorted(shards) if not (model_dir / s).is_file()]
    for p in bad:
        p.unlink(missing_ok=True)
    result: dict[str, object] = {
        "ok": not problems,
        "commitSha": commit,
        "problems": problems,
        "files": [{"path": f.path, "bytes": (model_dir / f.path).stat().st_size} for f in files if (model_dir / f.path).is_file()],
    }
    if not problems:
        marker = {"repo": repo, "revision": revision, "commitSha": commit, "files": result["files"], "verifiedAt": time.time()}
        tmp = model_dir / f"{MARKER}.tmp"
        tmp.write_text(json.dumps(marker))
        os.replace(tmp, model_dir / MARKER)
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model-dir", required=True, type=Path)
    ap.add_argument("--repo", required=True)
    ap.add_argument("--revision", required=True)
    args = ap.parse_args(argv)
    result = verify(args.model_dir, args.repo, args.revision)
    print(json.dumps(result))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
