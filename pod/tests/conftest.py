"""Shared fixtures: a tiny valid model directory, the simulated vLLM as a subprocess, a synthetic dataset,
and a helper that runs the harness the way the orchestrator does (a separate `python3 -m harness.run`)."""

from __future__ import annotations

import json
import os
import re
import socket
import struct
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
POD_DIR = REPO / "pod"
VLLM_BIN = REPO / "sandbox" / "vllm-sim" / "bin" / "vllm"
PROMPTS = REPO / "prompts"
SERVED_NAME = "sim/Qwen3-30B-A3B-Instruct-2507"

sys.path.insert(0, str(POD_DIR))  # harness
sys.path.insert(0, str(VLLM_BIN.parent.parent))  # vllm_sim, for its pure functions


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The venv's python3 first on PATH (as on the sandbox pod), the harness importable."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(POD_DIR)
    for knob in ("VLLM_SIM_FAULT", "VLLM_SIM_ANSWERS", "VLLM_SIM_KV_CACHE_TOKENS", "VLLM_SIM_STATE_DIR", "POD_WORKSPACE"):
        env.pop(knob, None)
    env.update(extra or {})
    return env


def write_safetensors(path: Path, tensors: dict[str, list[int]]) -> None:
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, shape in tensors.items():
        size = 4 * shape[0] * shape[1]
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)  # safetensors pads the header to 8 bytes
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + b"\0" * offset)


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("models") / "tiny-qwen"
    root.mkdir()
    shards = {"model-00001-of-00002.safetensors": {"embed.weight": [4, 4], "layer.0.weight": [4, 2]},
              "model-00002-of-00002.safetensors": {"lm_head.weight": [2, 4]}}
    weight_map = {}
    for shard, tensors in shards.items():
        write_safetensors(root / shard, tensors)
        weight_map.update({name: shard for name in tensors})
    (root / "model.safetensors.index.json").write_text(json.dumps({"metadata": {"total_size": 128},
                                                                   "weight_map": weight_map}))
    (root / "config.json").write_text(json.dumps({"architectures": ["Qwen3MoeForCausalLM"],
                                                  "max_position_embeddings": 8192}))
    return root


@dataclass
class Sim:
    proc: subprocess.Popen[bytes]
    url: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text()

    def get(self, path: str) -> bytes:
        with urllib.request.urlopen(self.url + path, timeout=10) as response:
            return bytes(response.read())

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        request = urllib.request.Request(self.url + path, data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return dict(json.loads(response.read()))

    def counter(self, name: str) -> float:
        """Sum of a Prometheus counter over its label sets."""
        text = self.get("/metrics").decode()
        return sum(float(v) for v in re.findall(rf"^{re.escape(name)}{{[^}}]*}} (\S+)$", text, re.MULTILINE))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def launch_sim(model: Path, log_path: Path, args: list[str], env: dict[str, str] | None = None
               ) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    command = [str(VLLM_BIN), "serve", str(model), "--host", "127.0.0.1", "--port", str(port), "--dtype",
               "bfloat16", "--max-model-len", "8192", "--max-num-seqs", "8", "--seed", "0", *args]
    with log_path.open("ab") as log_file:
        proc = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT,
                                env=child_env({"VLLM_SIM_STARTUP_DELAY_S": "0.2", **(env or {})}))
    return proc, port


def wait_healthy(proc: subprocess.Popen[bytes], port: int, log_path: Path, timeout_s: float = 20) -> None:
    """Poll /health like the orchestrator's readiness check; fail fast if the server exits."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"simulated vLLM exited {proc.returncode}:\n{log_path.read_text()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"simulated vLLM not healthy in time:\n{log_path.read_text()}")


@pytest.fixture
def start_sim(model_dir: Path, tmp_path: Path) -> Iterator[Callable[..., Sim]]:
    """Start a simulated vLLM and wait for /health, like the orchestrator's readiness check."""
    started: list[Sim] = []

    def start(name: str = SERVED_NAME, args: list[str] | None = None, env: dict[str, str] | None = None) -> Sim:
        log_path = tmp_path / f"vllm-{len(started)}.log"
        proc, port = launch_sim(model_dir, log_path, ["--served-model-name", name, *(args or [])], env)
        sim = Sim(proc, f"http://127.0.0.1:{port}", log_path)
        started.append(sim)
        wait_healthy(proc, port, log_path)
        return sim

    yield start
    for sim in started:
        sim.stop()


VULNERABLE_BODIES = [
    "int parse_{i}(const char *src) {{\n  char buf[32];\n  strcpy(buf, src);\n  return consume(buf);\n}}",
    "int fmt_{i}(char *out, const char *user) {{\n  char line[64];\n  sprintf(line, \"%s\", user);\n"
    "  return emit(out, line);\n}}",
    "void copy_{i}(struct pkt *p, const unsigned char *data, size_t len) {{\n  memcpy(p->payload, data, len);\n}}",
    "void set_{i}(int *table, int idx, int value) {{\n  table[idx] = value;\n}}",
]
BENIGN_BODIES = [
    "int parse_{i}(const char *src) {{\n  char buf[32];\n  if (strlen(src) >= sizeof(buf))\n    return -1;\n"
    "  strncpy(buf, src, sizeof(buf) - 1);\n  return consume(buf);\n}}",
    "int fmt_{i}(char *out, const char *user) {{\n  char line[64];\n  snprintf(line, sizeof(line), \"%s\", user);\n"
    "  return emit(out, line);\n}}",
    "void copy_{i}(struct pkt *p, const struct hdr *h) {{\n  memcpy(&p->hdr, h, sizeof(p->hdr));\n}}",
    "void set_{i}(int *table, int idx, int value) {{\n  if (idx < 0 || idx >= TABLE_SIZE)\n    return;\n"
    "  table[idx] = value;\n}}",
]


def dataset_rows(n: int, start: int = 1000) -> list[dict[str, Any]]:
    """VulTrial-shaped rows, alternating vulnerable and benign, with label-revealing metadata present."""
    rows = []
    for i in range(n):
        label = 1 - i % 2
        bodies = VULNERABLE_BODIES if label else BENIGN_BODIES
        rows.append({
            "idx": start + i, "project": "demo", "commit_id": f"c{i // 2:04d}", "target": label,
            "func": bodies[(i // 2) % len(bodies)].format(i=i),
            "cwe": ["CWE-787"] if label else [], "cve": f"CVE-2024-{i:05d}", "cve_desc": "buffer overflow",
            "commit_message": "fix overflow" if label else "refactor", "file_name": f"f{i}.c",
        })
    return rows


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    rows = dataset_rows(16)
    return write_jsonl(tmp_path / "dataset.jsonl", rows + [rows[2]])  # one duplicate idx, as in VulTrial


def write_spec(out_dir: Path, base_url: str, dataset_path: Path, **overrides: Any) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    spec: dict[str, Any] = {
        "schemaVersion": 1, "runId": out_dir.name, "baseUrl": base_url, "servedModelName": SERVED_NAME,
        "datasetPath": str(dataset_path), "promptTemplatePath": str(PROMPTS / "zero-shot.txt"),
        "fewShotPath": None, "outputDir": str(out_dir),
        "sampling": {"temperature": 0.7, "topP": 0.8, "topK": 20, "minP": 0, "maxTokens": 512, "seed": 1234},
        "concurrency": 3, "thinking": False,
        "codecarbon": {"countryIsoCode": "USA", "measurePowerSecs": 1, "trackingMode": "machine"},
        "baselineSeconds": 0.5, "requestTimeoutS": 30, "limit": None,
    }
    spec.update(overrides)
    path = out_dir / "spec.json"
    path.write_text(json.dumps(spec, indent=2))
    return path


def run_harness(spec_path: Path, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness.run", "--spec", str(spec_path)], cwd=spec_path.parent,
                          env=child_env(), capture_output=True, text=True, timeout=timeout)


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def read_predictions(out_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out_dir / "predictions.jsonl").read_text().splitlines() if line]
