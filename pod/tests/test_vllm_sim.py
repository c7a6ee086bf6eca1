"""The simulated vLLM: routes, response shape, determinism, thinking modes, startup checks and faults."""

from __future__ import annotations

import http.client
import json
import shutil
import subprocess
import urllib.error
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from conftest import SERVED_NAME, VLLM_BIN, Sim, child_env, launch_sim
from vllm_sim import compose_reply, find_unsafe

UNSAFE = "Review:\n```c\nint f(const char *s) {\n  char b[8];\n  strcpy(b, s);\n  return b[0];\n}\n```\n"


def chat(sim: Sim, content: str, name: str = SERVED_NAME, **fields: Any) -> dict[str, Any]:
    body = {"model": name, "messages": [{"role": "user", "content": content}], "temperature": 0.7, "top_p": 0.8,
            "top_k": 20, "min_p": 0, "max_tokens": 512, "seed": 1234, **fields}
    return sim.post("/v1/chat/completions", body)


def test_routes_and_response_shape(start_sim: Callable[..., Sim]) -> None:
    sim = start_sim(args=["--async-scheduling", "--kv-cache-dtype", "auto"])
    assert json.loads(sim.get("/version")) == {"version": "0.11.0+sim"}
    assert [m["id"] for m in json.loads(sim.get("/v1/models"))["data"]] == [SERVED_NAME]
    first, second = chat(sim, UNSAFE), chat(sim, UNSAFE)
    choice = first["choices"][0]
    assert choice["finish_reason"] == "stop"
    assert choice["message"]["content"] == second["choices"][0]["message"]["content"]  # deterministic
    usage = first["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0
    assert sim.counter("vllm:request_success_total") == 2
    assert sim.counter("vllm:generation_tokens_total") == 2 * usage["completion_tokens"]
    assert sim.counter("vllm:prompt_tokens_total") == 2 * usage["prompt_tokens"]
    assert "vllm:num_requests_running" in sim.get("/metrics").decode()
    log = sim.log()
    assert "Loading weights took" in log and "Starting vLLM API server on http://127.0.0.1:" in log
    assert "'--async-scheduling': True" in log and "'--kv-cache-dtype': 'auto'" in log  # recorded
    assert "temperature=0.7, top_p=0.8, top_k=20, min_p=0, seed=1234" in log


def test_max_tokens_cuts_with_length_and_context_limit(start_sim: Callable[..., Sim]) -> None:
    sim = start_sim()
    cut = chat(sim, UNSAFE, max_tokens=5)
    assert cut["choices"][0]["finish_reason"] == "length" and cut["usage"]["completion_tokens"] == 5
    with pytest.raises(urllib.error.HTTPError) as err:
        chat(sim, UNSAFE, max_tokens=9000)
    assert err.value.code == 400 and "maximum context length is 8192" in err.value.read().decode()
    with pytest.raises(urllib.error.HTTPError) as err:
        chat(sim, UNSAFE, name="other-model")
    assert err.value.code == 404


def test_thinking_with_reasoning_parser(start_sim: Callable[..., Sim]) -> None:
    name = "sim/Qwen3-30B-A3B-Thinking-2507"
    sim = start_sim(name=name, args=["--reasoning-parser", "deepseek_r1"])
    message = chat(sim, UNSAFE, name=name)["choices"][0]["message"]
    assert message["reasoning_content"] == message["reasoning"] and message["reasoning"].startswith("Okay")
    assert "</think>" not in message["content"] and "FINAL ANSWER:" in message["content"]
    truncated = chat(sim, UNSAFE, name=name, max_tokens=4)["choices"][0]
    assert truncated["finish_reason"] == "length" and truncated["message"]["content"] is None


def test_thinking_without_parser_closes_think_only(start_sim: Callable[..., Sim]) -> None:
    name = "sim/Qwen3-30B-A3B-Thinking-2507"
    sim = start_sim(name=name)
    message = chat(sim, UNSAFE, name=name)["choices"][0]["message"]
    assert "reasoning" not in message
    assert "<think>" not in message["content"] and message["content"].count("</think>") == 1


def test_verdicts_follow_patterns_with_some_noise() -> None:
    assert find_unsafe("void f(char *d, char *s) { strcpy(d, s); }")
    assert find_unsafe("void f(char *d, char *s, int n) { memcpy(d, s, n); }")
    assert not find_unsafe("void f(char *d, char *s, int n) { if (n > 8) return; memcpy(d, s, n); }")
    assert not find_unsafe("void f(char *d, char *s) { memcpy(d, s, sizeof(*d)); snprintf(d, 4, \"%s\", s); }")
    assert find_unsafe("void f(int *t, int i) { t[i] = 1; }")
    assert not find_unsafe("void f(int *t, int i) { if (i < 4) t[i] = 1; }")
    assert find_unsafe("void f(struct s *p) { free(p); p->n = 0; }")
    assert find_unsafe("int f(int w, int h) { char *p = malloc(w * h); return !p; }")
    assert find_unsafe("int f(const char *c) { return system(c); }")
    replies = [compose_reply(f"```c\nint f{i}(void) {{ return 0; }}\n```", f"prompt {i}", 0, False)
               for i in range(2000)]
    yes = sum(r.answer.endswith("FINAL ANSWER: YES") for r in replies)
    unparseable = sum("FINAL ANSWER" not in r.answer for r in replies)
    assert 140 <= yes <= 260  # ~10% of safe functions are flipped to YES
    assert 30 <= unparseable <= 95  # ~3% ramble without a final line
    again = compose_reply("```c\nint f7(void) { return 0; }\n```", "prompt 7", 0, False)
    assert again == replies[7]


def test_missing_model_dir_exits_1(tmp_path: Path) -> None:
    result = subprocess.run([str(VLLM_BIN), "serve", str(tmp_path / "absent"), "--port", "1"], env=child_env(),
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert "Invalid repository ID or local directory specified" in result.stderr


def test_truncated_shard_exits_1(model_dir: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(model_dir, broken)
    shard = broken / "model-00002-of-00002.safetensors"
    shard.write_bytes(shard.read_bytes()[:-4])
    proc, _ = launch_sim(broken, tmp_path / "log", [])
    assert proc.wait(timeout=30) == 1
    assert "MetadataIncompleteBuffer" in (tmp_path / "log").read_text()


def test_oom_fault_exits_1_with_cuda_text(model_dir: Path, tmp_path: Path) -> None:
    proc, _ = launch_sim(model_dir, tmp_path / "log", [], env={"VLLM_SIM_FAULT": "oom"})
    assert proc.wait(timeout=30) == 1
    log = (tmp_path / "log").read_text()
    assert "torch.OutOfMemoryError: CUDA out of memory" in log
    assert "Starting vLLM API server" not in log


def test_removed_flag_is_rejected(model_dir: Path) -> None:
    result = subprocess.run([str(VLLM_BIN), "serve", str(model_dir), "--enable-reasoning"], env=child_env(),
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and "unrecognized arguments: --enable-reasoning" in result.stderr


def test_kv_cache_too_small_exits_1_with_vllm_numbers(model_dir: Path, tmp_path: Path) -> None:
    proc, _ = launch_sim(model_dir, tmp_path / "log", [], env={"VLLM_SIM_KV_CACHE_TOKENS": "4096"})
    assert proc.wait(timeout=30) == 1
    log = (tmp_path / "log").read_text()
    assert "max seq len (8192)" in log and "estimated maximum model length is 4096" in log


def test_second_server_on_a_held_gpu_fails_like_vllm(start_sim: Callable[..., Sim], model_dir: Path,
                                                     tmp_path: Path) -> None:
    state = {"VLLM_SIM_STATE_DIR": str(tmp_path)}
    first = start_sim(env=state)
    assert (tmp_path / ".vllm-sim-gpu").read_text().strip() == str(first.proc.pid)
    proc, _ = launch_sim(model_dir, tmp_path / "second.log", [], env=state)
    assert proc.wait(timeout=30) == 1
    log = (tmp_path / "second.log").read_text()
    assert "Free memory on device" in log and f"pid {first.proc.pid} holds the GPU" in log
    first.stop()
    assert not (tmp_path / ".vllm-sim-gpu").exists()  # a clean stop releases the claim
    third = start_sim(env=state)
    assert json.loads(third.get("/version"))["version"] == "0.11.0+sim"


def test_crash_after_answers_exactly_n_of_concurrent_requests(start_sim: Callable[..., Sim]) -> None:
    sim = start_sim(env={"VLLM_SIM_FAULT": "crash-after:10"})

    def answered(_: int) -> bool:
        try:
            chat(sim, UNSAFE)
            return True
        except (urllib.error.URLError, ConnectionError, http.client.HTTPException):
            return False

    with ThreadPoolExecutor(max_workers=24) as pool:
        results = list(pool.map(answered, range(24)))
    assert sim.proc.wait(timeout=10) == 1
    assert results.count(True) == 10


def test_crash_once_crashes_only_the_first_server(start_sim: Callable[..., Sim], tmp_path: Path) -> None:
    env = {"VLLM_SIM_STATE_DIR": str(tmp_path), "VLLM_SIM_FAULT": "crash-after:2:once"}
    first = start_sim(env=env)
    chat(first, UNSAFE)
    chat(first, UNSAFE)  # the second completion is answered, then the engine dies
    assert first.proc.wait(timeout=10) == 1
    with pytest.raises((urllib.error.URLError, ConnectionError)):
        chat(first, UNSAFE)
    assert (tmp_path / ".vllm-sim-crashed").exists()
    second = start_sim(env=env)  # its claim on the GPU is free: the crashed holder is dead
    for _ in range(4):
        chat(second, UNSAFE)
    assert second.proc.poll() is None
