"""environment.json: versions and hardware that a result depends on (reference/pod-side.md 0.2)."""

from __future__ import annotations

import os
import platform
import shutil
import socket
import subprocess
import sys
from importlib import metadata
from typing import Any

from .client import VllmClient
from .energy import rapl_readable, read_nvml_mj
from .store import now_iso

NVIDIA_SMI_FIELDS = ("index", "name", "memory.total", "power.limit", "driver_version", "uuid")


def _package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def nvidia_smi() -> list[dict[str, str]] | dict[str, str] | None:
    """One entry per GPU (memory in MiB, power limit in W), None without the binary, {"error"} if it fails."""
    binary = shutil.which("nvidia-smi")
    if binary is None:
        return None
    command = [binary, f"--query-gpu={','.join(NVIDIA_SMI_FIELDS)}", "--format=csv,noheader,nounits"]
    try:
        output = subprocess.run(command, capture_output=True, text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        return {"error": str(exc)}
    return [dict(zip(NVIDIA_SMI_FIELDS, (v.strip() for v in line.split(",")), strict=False))
            for line in output.splitlines() if line.strip()]


def vllm_version(client: VllmClient) -> dict[str, Any]:
    try:
        return {"version": client.get_json("/version").get("version"), "error": None}
    except Exception as exc:  # recorded, not fatal: the chat requests decide whether the server works
        return {"version": None, "error": str(exc)}


def collect(client: VllmClient, codecarbon_version: str) -> dict[str, Any]:
    return {
        "collected_at": now_iso(),
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "python_executable": sys.executable,
        "codecarbon": codecarbon_version,
        "huggingface_hub": _package_version("huggingface_hub"),
        "hf_xet": _package_version("hf-xet"),
        "nvidia_ml_py": _package_version("nvidia-ml-py"),
        "vllm": vllm_version(client),
        "nvidia_smi": nvidia_smi(),
        "nvml_available": read_nvml_mj() is not None,
        "rapl_readable": rapl_readable(),
        "cpu_count": os.cpu_count(),
    }
