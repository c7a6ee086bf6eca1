#!/usr/bin/env python3
"""Checks the harness's energy measurement on a real NVIDIA GPU, without model weights or vLLM.

The sandbox has no GPU, so its energy figures are zeros. On a GPU machine this runs the real harness
(`python3 -m harness.run`, CodeCarbon 2.7.1, NVML) against the simulated vLLM, while a separate process loads the
GPU with matrix products during the inference stage only (as vLLM would; idle during the baseline). It prints what
a paper would quote: idle baseline power, gross and net GPU energy from CodeCarbon and from the NVML counter, their
difference, and the GPU fields the manifest records. Figures, not a pass/fail test.

    python3 scripts/gpu-energy-check.py [--gpu 0] [--baseline-s 20] [--samples 24] [--out DIR]

Needs: codecarbon==2.7.1 importable by this python, torch with CUDA (for the load only), nvidia-smi.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import struct
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SIM = REPO / "sandbox" / "vllm-sim" / "vllm_sim.py"
DATASET = REPO / "data" / "synthetic-vultrial.jsonl"
SERVED = "sim/Qwen3-30B-A3B-Instruct-2507"

# Runs in its own process: bf16 matrix products on one GPU while the harness's progress says `inference`.
LOAD = """
import json, sys, time, torch
progress, gpu = sys.argv[1], int(sys.argv[2])
dev = torch.device(f"cuda:{gpu}")
a = torch.randn(8192, 8192, device=dev, dtype=torch.bfloat16)
b = torch.randn(8192, 8192, device=dev, dtype=torch.bfloat16)
busy = 0.0
while True:
    try:
        p = json.load(open(progress))
    except (OSError, ValueError):
        p = {}
    if p.get("state") in ("done", "failed"):
        break
    if p.get("stage") == "inference":
        t = time.monotonic()
        for _ in range(20):
            a @ b
        torch.cuda.synchronize(dev)
        busy += time.monotonic() - t
    else:
        time.sleep(0.1)
print(json.dumps({"load_busy_s": round(busy, 1)}))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tiny_model(root: Path) -> Path:
    """A structurally valid one-shard safetensors model: what the simulated vLLM checks before it serves."""
    root.mkdir(parents=True, exist_ok=True)
    header = json.dumps({"w": {"dtype": "F32", "shape": [4, 4], "data_offsets": [0, 64]}}).encode()
    header += b" " * (-len(header) % 8)
    (root / "model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 64)
    (root / "config.json").write_text(json.dumps({"architectures": ["Qwen3MoeForCausalLM"],
                                                  "max_position_embeddings": 32768}))
    return root


def wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"simulated vLLM exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("simulated vLLM not healthy in time")


def kwh_to_j(v: float | None) -> str:
    return "n/a" if v is None else f"{v * 3.6e6:.1f} J"


def watts(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.1f} W"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--gpu", type=int, default=0, help="NVML index of the GPU to load and meter")
    ap.add_argument("--baseline-s", type=float, default=20)
    ap.add_argument("--samples", type=int, default=24)
    ap.add_argument("--tokens-per-s", type=float, default=150, help="the simulated server's speed")
    ap.add_argument("--out", type=Path, default=Path(f"gpu-energy-check-{time.strftime('%Y%m%dT%H%M%S')}"))
    args = ap.parse_args()
    out = args.out.resolve()
    run_dir = out / "run"
    run_dir.mkdir(parents=True, exist_ok=True)

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "VLLM_SIM_STARTUP_DELAY_S": "0.5", "VLLM_SIM_TOKENS_PER_S": str(args.tokens_per_s)}
    for knob in ("VLLM_SIM_FAULT", "VLLM_SIM_STATE_DIR", "POD_WORKSPACE"):
        env.pop(knob, None)
    with (out / "vllm-sim.log").open("wb") as log:
        sim = subprocess.Popen([sys.executable, str(SIM), "serve", str(tiny_model(out / "model")),
                                "--served-model-name", SERVED, "--host", "127.0.0.1", "--port", str(port),
                                "--dtype", "bfloat16", "--max-model-len", "8192", "--max-num-seqs", "4",
                                "--seed", "0"], stdout=log, stderr=subprocess.STDOUT, env=env)
    load: subprocess.Popen[str] | None = None
    try:
        wait_healthy(url, sim)
        spec = {
            "schemaVersion": 1, "runId": "gpu-energy-check", "baseUrl": url, "servedModelName": SERVED,
            "datasetPath": str(DATASET), "promptTemplatePath": str(REPO / "prompts" / "zero-shot.txt"),
            "fewShotPath": None, "outputDir": str(run_dir),
            "sampling": {"temperature": 0.7, "topP": 0.8, "topK": 20, "minP": 0, "maxTokens": 1024, "seed": 1234},
            "concurrency": 1, "thinking": False,
            "codecarbon": {"countryIsoCode": "USA", "measurePowerSecs": 1, "trackingMode": "machine"},
            "baselineSeconds": args.baseline_s, "requestTimeoutS": 120, "limit": args.samples,
            "gpuIndices": [args.gpu],
        }
        (run_dir / "spec.json").write_text(json.dumps(spec, indent=2))
        load = subprocess.Popen([sys.executable, "-c", LOAD, str(run_dir / "progress.json"), str(args.gpu)],
                                stdout=subprocess.PIPE, text=True)
        harness = subprocess.run([sys.executable, "-m", "harness.run", "--spec", str(run_dir / "spec.json")],
                                 env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO / "pod"), os.environ.get("PYTHONPATH")]))}, check=False)
        load_out, _ = load.communicate(timeout=120)
    finally:
        if load is not None and load.poll() is None:
            load.kill()
        sim.terminate()
        sim.wait(timeout=10)
    if harness.returncode != 0:
        print(f"harness exited {harness.returncode}; see {run_dir / 'harness.log'}", file=sys.stderr)
        return 1

    metrics: dict[str, Any] = json.loads((run_dir / "metrics.json").read_text())
    environment: dict[str, Any] = json.loads((run_dir / "environment.json").read_text())
    baseline: dict[str, Any] = json.loads((run_dir / "baseline.json").read_text())
    e = metrics["energy"]
    gpu = environment["gpu"]
    rows = [
        ("GPU", f"{gpu['count']}x {gpu['name']} (indices {gpu.get('indices')}), {gpu['memory_total_mib']} MiB, "
                f"power limit {gpu['power_limit_w']} W, driver {gpu['driver_version']}, CUDA {gpu['cuda_driver_version']}"),
        ("versions", f"codecarbon {environment['codecarbon']}, torch {environment.get('torch')} "
                     f"(CUDA {environment.get('cuda_runtime')}), nvidia-ml-py {environment.get('nvidia_ml_py')}, "
                     f"RAPL readable {environment['rapl_readable']}"),
        ("load", (load_out or "").strip()),
        ("baseline", f"{baseline['duration_s']:.1f} s idle: CodeCarbon {watts(baseline['gpu_power_w'])}, "
                     f"NVML {watts(baseline['nvml_gpu_power_w'])}"),
        ("inference", f"{metrics['durations_s']['inference']:.1f} s, {metrics['n']} samples, "
                      f"{metrics['tokens']['completion']} output tokens"),
        ("GPU gross", f"CodeCarbon {kwh_to_j(e['gpu_kwh'])}   NVML {kwh_to_j(e['nvml_gpu_kwh'])}"),
        ("GPU net of idle", f"CodeCarbon {kwh_to_j(e['gpu_kwh_net_of_baseline'])}   "
                            f"NVML {kwh_to_j(e['nvml_gpu_kwh_net_of_baseline'])}"),
        ("CodeCarbon - NVML", f"{kwh_to_j(e['codecarbon_minus_nvml_gpu_kwh'])} ("
                              + ("n/a" if e["codecarbon_vs_nvml_gpu_rel"] is None
                                 else f"{e['codecarbon_vs_nvml_gpu_rel'] * 100:+.2f} %") + ")"),
        ("per sample", f"{kwh_to_j(e['gpu_kwh_per_sample'])} gross, {kwh_to_j(e['gpu_kwh_net_per_sample'])} net"),
        ("CPU / RAM", f"{kwh_to_j(e['cpu_kwh'])} / {kwh_to_j(e['ram_kwh'])} "
                      f"(estimates: {metrics['energy_estimates']})"),
    ]
    for name, value in rows:
        print(f"{name:>18}: {value}")
    print(f"{'files':>18}: {run_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
