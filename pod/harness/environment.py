"""environment.json: versions and hardware that a result depends on (reference/pod-side.md 0.2).

The orchestrator merges it into the run's manifest. Where there is no NVIDIA GPU (the sandbox), every GPU field is
null and `gpu.note` says why, so a missing value is never mistaken for a measured one.
"""

from __future__ import annotations

import json
import os
import platform
import re
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
CUDA_VERSION_RE = re.compile(r"CUDA Version:\s*([0-9][0-9.]*)")
# torch's own CUDA build, asked in a child process: importing torch here would cost seconds and memory.
TORCH_PROBE = "import json, torch; print(json.dumps({'torch': torch.__version__, 'cuda': torch.version.cuda}))"


def _package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _run(command: list[str], timeout_s: float) -> str:
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, check=True).stdout


def nvidia_smi() -> list[dict[str, str]] | dict[str, str] | None:
    """One entry per GPU (memory in MiB, power limit in W), None without the binary, {"error"} if it fails."""
    binary = shutil.which("nvidia-smi")
    if binary is None:
        return None
    command = [binary, f"--query-gpu={','.join(NVIDIA_SMI_FIELDS)}", "--format=csv,noheader,nounits"]
    try:
        output = _run(command, 30)
    except (OSError, subprocess.SubprocessError) as exc:
        return {"error": str(exc)}
    return [dict(zip(NVIDIA_SMI_FIELDS, (v.strip() for v in line.split(",")), strict=False))
            for line in output.splitlines() if line.strip()]


def cuda_driver_version() -> str | None:
    """The highest CUDA version the driver supports, from nvidia-smi's banner (`CUDA Version: 12.8`)."""
    binary = shutil.which("nvidia-smi")
    if binary is None:
        return None
    try:
        match = CUDA_VERSION_RE.search(_run([binary], 30))
    except (OSError, subprocess.SubprocessError):
        return None
    return match.group(1) if match else None


def torch_versions() -> dict[str, str | None]:
    """torch and the CUDA runtime it was built with; nulls when torch is not installed (the sandbox)."""
    if _package_version("torch") is None:
        return {"torch": None, "cuda_runtime": None, "torch_probe_error": None}
    try:
        found = json.loads(_run([sys.executable, "-c", TORCH_PROBE], 180).strip().splitlines()[-1])
        return {"torch": found.get("torch"), "cuda_runtime": found.get("cuda"), "torch_probe_error": None}
    except (OSError, subprocess.SubprocessError, ValueError, IndexError) as exc:
        return {"torch": _package_version("torch"), "cuda_runtime": None, "torch_probe_error": str(exc)[:500]}


def _number(value: str | None) -> float | None:
    try:
        return float(value) if value not in (None, "", "[N/A]", "N/A") else None
    except ValueError:
        return None


def gpu_summary(smi: list[dict[str, str]] | dict[str, str] | None, cuda_driver: str | None,
                indices: tuple[int, ...] | None = None) -> dict[str, Any]:
    """What the manifest records about the run's GPUs (`indices`; None: all): name, count, memory (MiB), power limit
    (W), driver and CUDA."""
    empty: dict[str, Any] = {"present": False, "count": 0, "name": None, "memory_total_mib": None,
                             "power_limit_w": None, "driver_version": None, "cuda_driver_version": None,
                             "indices": []}
    if smi is None:
        return {**empty, "note": "nvidia-smi not found: no NVIDIA GPU here (the sandbox has none), GPU fields are null"}
    if isinstance(smi, dict):
        return {**empty, "note": f"nvidia-smi failed: {smi.get('error')}"}
    if indices is not None:
        smi = [g for g in smi if g.get("index") in {str(i) for i in indices}]
        if not smi:
            return {**empty, "note": f"nvidia-smi lists none of the run's GPUs {list(indices)}"}
    if not smi:
        return {**empty, "note": "nvidia-smi lists no GPU"}
    first = smi[0]
    names = sorted({g.get("name", "") for g in smi})
    return {
        "present": True,
        "count": len(smi),
        "indices": [int(g["index"]) for g in smi if g.get("index", "").isdigit()],
        "name": names[0] if len(names) == 1 else " + ".join(names),
        "memory_total_mib": _number(first.get("memory.total")),
        "power_limit_w": _number(first.get("power.limit")),
        "driver_version": first.get("driver_version") or None,
        "cuda_driver_version": cuda_driver,
        "note": None,
    }


def vllm_version(client: VllmClient) -> dict[str, Any]:
    try:
        return {"version": client.get_json("/version").get("version"), "error": None}
    except Exception as exc:  # recorded, not fatal: the chat requests decide whether the server works
        return {"version": None, "error": str(exc)}


def collect(client: VllmClient, codecarbon_version: str, gpu_indices: tuple[int, ...] | None = None) -> dict[str, Any]:
    smi = nvidia_smi()
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
        "vllm_package": _package_version("vllm"),
        **torch_versions(),
        "nvidia_smi": smi,
        "gpu": gpu_summary(smi, cuda_driver_version(), gpu_indices),
        "gpu_indices": list(gpu_indices) if gpu_indices is not None else None,
        "nvml_available": read_nvml_mj(gpu_indices) is not None,
        "rapl_readable": rapl_readable(),
        "cpu_count": os.cpu_count(),
    }
