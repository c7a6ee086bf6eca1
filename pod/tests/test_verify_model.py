"""verify_model: the checks before `.complete`, what gets deleted, and the CLI contract the orchestrator parses."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import child_env
from harness.verify_model import MARKER, safetensors_consistent

SHARDS = ("model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors")
LFS = {*SHARDS}


def expected_for(model: Path, **overrides: Any) -> dict[str, Any]:
    """What the orchestrator writes from the Hub's metadata: every file with its size, sha256 for LFS files."""
    files = []
    for p in sorted(model.rglob("*")):
        rel = p.relative_to(model).as_posix()
        if p.is_file() and not rel.startswith(".cache/"):
            sha = hashlib.sha256(p.read_bytes()).hexdigest() if rel in LFS else None
            files.append({"path": rel, "bytes": p.stat().st_size, "sha256": sha})
    return {"repo": "Qwen/Tiny", "revision": "main", "commitSha": "c" * 40, "files": files, **overrides}


@pytest.fixture
def model(model_dir: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "model"
    shutil.copytree(model_dir, copy)
    # hf's local-dir metadata: a stale entry would make `hf download` skip a file deleted without it
    meta = copy / ".cache" / "huggingface" / "download"
    meta.mkdir(parents=True)
    for shard in SHARDS:
        (meta / f"{shard}.metadata").write_text("commit\netag\n0\n")
    return copy


def run_verify(model: Path, expected: dict[str, Any], *extra: str) -> tuple[int, dict[str, Any]]:
    path = model.parent / "expected.json"
    path.write_text(json.dumps(expected))
    result = subprocess.run([sys.executable, "-m", "harness.verify_model", "--model-dir", str(model),
                             "--expected", str(path), *extra], env=child_env(), capture_output=True, text=True,
                            timeout=60)
    return result.returncode, json.loads(result.stdout.strip().splitlines()[-1])


def test_complete_model_passes_and_writes_the_marker(model: Path) -> None:
    expected = expected_for(model)
    code, out = run_verify(model, expected)
    assert code == 0 and out["ok"] and out["problems"] == [] and out["deleted"] == []
    assert out["commitSha"] == "c" * 40 and out["sha256Verified"] is False
    assert {f["path"] for f in out["files"]} == {f["path"] for f in expected["files"]}
    marker = json.loads((model / MARKER).read_text())
    assert marker["commitSha"] == "c" * 40 and marker["files"] == out["files"] and marker["sha256Verified"] is False


def test_truncated_shard_is_deleted_with_its_hf_metadata_and_no_marker(model: Path) -> None:
    expected = expected_for(model)
    shard = model / SHARDS[1]
    shard.write_bytes(shard.read_bytes()[:-16])
    code, out = run_verify(model, expected)
    assert code == 1 and not out["ok"]
    assert out["deleted"] == [SHARDS[1]]
    assert any(SHARDS[1] in p and "the Hub says" in p for p in out["problems"])
    assert not shard.exists() and not (model / ".cache/huggingface/download" / f"{SHARDS[1]}.metadata").exists()
    assert (model / SHARDS[0]).exists() and not (model / MARKER).exists()


def test_header_inconsistent_with_size_fails_even_when_the_hub_size_is_unknown(model: Path) -> None:
    expected = expected_for(model)
    for f in expected["files"]:
        f["bytes"] = None
    shard = model / SHARDS[0]
    shard.write_bytes(shard.read_bytes() + b"\0" * 8)  # one stray block appended: size no longer matches the header
    assert not safetensors_consistent(shard)
    code, out = run_verify(model, expected)
    assert code == 1 and out["deleted"] == [SHARDS[0]]
    assert "safetensors header does not match" in out["problems"][0]


def test_missing_files_and_unlisted_index_shards_are_reported(model: Path) -> None:
    expected = expected_for(model)
    (model / SHARDS[0]).unlink()
    expected["files"] = [f for f in expected["files"] if f["path"] != SHARDS[1]]  # the Hub does not list shard 2
    code, out = run_verify(model, expected)
    assert code == 1 and out["deleted"] == []
    assert f"missing {SHARDS[0]}" in out["problems"]
    assert f"model.safetensors.index.json names {SHARDS[1]}, which the Hub does not list" in out["problems"]


def test_sha256_catches_a_same_size_corruption_only_when_asked(model: Path) -> None:
    expected = expected_for(model)
    shard = model / SHARDS[1]
    data = bytearray(shard.read_bytes())
    data[-1] ^= 0xFF  # one flipped byte in the tensor data: size and header still agree
    shard.write_bytes(bytes(data))
    code, out = run_verify(model, expected)
    assert code == 0 and out["ok"] and out["sha256Verified"] is False  # sizes and headers cannot see it
    code, out = run_verify(model, expected, "--sha256")
    assert code == 1 and out["deleted"] == [SHARDS[1]] and "sha256" in out["problems"][0]
    assert not (model / MARKER).exists()  # the earlier marker is gone too: it described a corrupt file


def test_sha256_pass_is_recorded(model: Path) -> None:
    code, out = run_verify(model, expected_for(model), "--sha256")
    assert code == 0 and out["sha256Verified"] is True
    assert json.loads((model / MARKER).read_text())["sha256Verified"] is True


def test_unreadable_index_is_deleted(model: Path) -> None:
    expected = expected_for(model)
    (model / "model.safetensors.index.json").write_text('{"weight_map": ')
    for f in expected["files"]:
        if f["path"] == "model.safetensors.index.json":
            f["bytes"] = len('{"weight_map": ')
    code, out = run_verify(model, expected)
    assert code == 1 and "model.safetensors.index.json" in out["deleted"]
    assert not (model / "model.safetensors.index.json").exists()
