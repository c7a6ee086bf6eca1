"""Simulated `vllm serve` for the sandbox pod and the harness tests (Python stdlib only).

It behaves like vLLM 0.11 wherever the orchestrator or the harness can tell: command-line flags, startup log
lines, a check of the downloaded weights, a port that opens only once startup is over, the OpenAI chat
response shape, Prometheus metrics, and startup and runtime faults. Its answers are deterministic: a crude scan of the
evaluated C function for unsafe patterns, with about 10% of verdicts flipped and about 3% of replies left
without a FINAL ANSWER line (both chosen by a hash of the prompt), so accuracy is high but not perfect.

Knobs (environment): VLLM_SIM_STARTUP_DELAY_S (default 1), VLLM_SIM_TOKENS_PER_S (default 2000),
VLLM_SIM_FAULT = "oom" | "crash-after:N" | "crash-after:N:once", VLLM_SIM_KV_CACHE_TOKENS (KV-cache capacity in
tokens; a larger --max-model-len fails at startup like vLLM's KV-cache check; unlimited when unset),
VLLM_SIM_ANSWERS (answer profiles, below).

VLLM_SIM_ANSWERS (unset or empty: the answers above, unchanged) makes the verdicts follow a profile per prompt
strategy, so a simulated study can show few-shot clearly helping, clearly hurting or inconclusive. Its value is JSON:
  {"datasetPath": "/abs/dataset.jsonl", "sharedLatent": 0.7,
   "profiles": [{"templatePath": "/abs/zero-shot.txt", "accuracy": 0.8, "yesBias": 0.5, "unparseable": 0.0}, ...]}
- datasetPath: the evaluated VulTrial JSONL (`func`, `target` 0/1), read once at startup. A request's truth label is
  that of the row whose whitespace-normalised `func` equals its evaluated function (the last fenced code block of
  the user message).
- profiles: the request's prompt belongs to the profile whose template it matches: every non-empty, stripped static
  fragment between the template's placeholders (`{func}`, `{examples}`, any `{word}`) occurs in the prompt, in order;
  the template with the most matched static characters wins (a tie: the first listed).
  accuracy: P(verdict correct); yesBias (default 0.5): the share of errors that are false YES, so on a balanced
  dataset P(wrong | benign) = 2(1-accuracy)yesBias and P(wrong | vulnerable) = 2(1-accuracy)(1-yesBias), each capped
  at 1; unparseable (default 0): the share of replies without a FINAL ANSWER line.
- Determinism and pairing: every draw is a uniform from sha256 of (normalised function, first served model name,
  request `seed`), and for per-strategy draws the template text too. A sample is correct iff u < P(correct | label),
  where with probability sharedLatent (default 0.7; drawn without the template) u is shared by all of the model's
  strategies, else it is the strategy's own; so zero-shot and few-shot runs of one model agree on most samples, as
  real paired runs do. The unparseable draw is per strategy.
- A request matching no template (WARNING once; requests without a fenced code block, like the orchestrator's
  warm-up, are not evaluations and pass silently) or whose function is not in the dataset (WARNING with a running
  count, at 1, 2, 4, 8, ... such requests) is answered as without the variable.
- Invalid JSON, an unknown key, an unreadable dataset or template, or a number outside 0..1: exit 2 at startup.

State on a sandbox pod lives in VLLM_SIM_STATE_DIR, else $POD_WORKSPACE (unset: none, and the features below are off):
- the simulated GPU: a server claims `.vllm-sim-gpu` (its pid) while loading; a second server started while a live one
  holds it fails like vLLM when another process holds the VRAM ("Free memory on device ... is less than desired GPU
  memory utilization"). A killed server's claim is released by its death.
- `crash-after:N:once`: only the first server on the pod crashes (marker `.vllm-sim-crashed`); a restarted one serves.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import signal
import struct
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NoReturn

VERSION = "0.11.0+sim"
# Flags real vLLM has dropped; it rejects them as unrecognized, so the simulator does too.
REMOVED_FLAGS = frozenset({"--enable-reasoning"})
FLAG_RE = re.compile(r"^--[a-z0-9][a-z0-9-]*(=.*)?$")
TOKEN_RE = re.compile(r"\w+|[^\w\s]")
CODE_BLOCK_RE = re.compile(r"```[^\n]*\n(.*?)```", re.DOTALL)
FUNC_NAME_RE = re.compile(r"(\w+)\s*\([^;{}]*\)\s*\{")


# ---------------------------------------------------------------- logging (vLLM's format, stdout; errors stderr)


def log(level: str, source: str, message: str) -> None:
    stream = sys.stderr if level == "ERROR" else sys.stdout
    print(f"{level} {time.strftime('%m-%d %H:%M:%S')} [{source}] {message}", file=stream, flush=True)


VLLM_PKG = "/usr/local/lib/python3.12/dist-packages/vllm"


def die_with_traceback(frames: list[tuple[str, int, str]], exc_line: str, extra: list[str] | None = None) -> NoReturn:
    """Print a Python-style traceback to stderr and exit 1, the way a failed vLLM startup ends."""
    lines = ["Traceback (most recent call last):"]
    for module, lineno, function in frames:
        lines.append(f'  File "{VLLM_PKG}/{module}", line {lineno}, in {function}')
    lines.append(exc_line)
    lines.extend(extra or [])
    print("\n".join(lines), file=sys.stderr, flush=True)
    sys.exit(1)


# ---------------------------------------------------------------- arguments


def build_parser() -> tuple[argparse.ArgumentParser, argparse.ArgumentParser]:
    parser = argparse.ArgumentParser(prog="vllm", allow_abbrev=False)
    parser.add_argument("--version", action="version", version=VERSION)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", prog="vllm serve", allow_abbrev=False)
    serve.add_argument("model")
    serve.add_argument("--served-model-name", nargs="+")
    serve.add_argument("--host", default="0.0.0.0")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--dtype", default="auto", choices=["auto", "half", "float16", "bfloat16", "float", "float32"])
    serve.add_argument("--max-model-len", type=int)
    serve.add_argument("--max-num-seqs", type=int, default=256)
    serve.add_argument("--max-num-batched-tokens", type=int)
    serve.add_argument("--seed", type=int, default=0)
    serve.add_argument("--reasoning-parser")
    serve.add_argument("--enable-prefix-caching", action=argparse.BooleanOptionalAction, default=True)
    serve.add_argument("--gpu-memory-utilization", type=float, default=0.9)
    serve.add_argument("--tensor-parallel-size", "-tp", type=int, default=1)
    serve.add_argument("--api-key")
    return parser, serve


def accept_extra_flags(extra: list[str], serve: argparse.ArgumentParser) -> dict[str, str | bool]:
    """Record well-formed vLLM flags the simulator does not model; reject removed or malformed ones."""
    recorded: dict[str, str | bool] = {}
    i = 0
    while i < len(extra):
        token = extra[i]
        name, eq, value = token.partition("=")
        if name in REMOVED_FLAGS or not FLAG_RE.match(token):
            serve.error(f"unrecognized arguments: {token}")
        if not eq and i + 1 < len(extra) and not extra[i + 1].startswith("--"):
            value = extra[i + 1]
            i += 1
        recorded[name] = value if (eq or value) else True
        i += 1
    return recorded


@dataclass(frozen=True)
class Fault:
    oom: bool = False
    crash_after: int | None = None
    crash_once: bool = False


def parse_fault(raw: str) -> Fault:
    if not raw:
        return Fault()
    if raw == "oom":
        return Fault(oom=True)
    match = re.fullmatch(r"crash-after:(\d+)(:once)?", raw)
    if match and int(match.group(1)) >= 1:
        return Fault(crash_after=int(match.group(1)), crash_once=match.group(2) is not None)
    print(f"vllm-sim: VLLM_SIM_FAULT must be 'oom', 'crash-after:N' or 'crash-after:N:once' (N >= 1), got {raw!r}",
          file=sys.stderr)
    sys.exit(2)


def state_dir() -> Path | None:
    """Where per-pod simulator state lives (the simulated GPU, the crash-once marker); None outside a sandbox pod."""
    raw = os.environ.get("VLLM_SIM_STATE_DIR") or os.environ.get("POD_WORKSPACE")
    return Path(raw) if raw else None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def claim_gpu(state: Path | None, utilization: float) -> Path | None:
    """Take the simulated GPU, or fail the way vLLM does when another process holds the memory it wants."""
    if state is None:
        return None
    claim = state / ".vllm-sim-gpu"
    try:
        holder = int(claim.read_text().strip() or "0")
    except (FileNotFoundError, ValueError):
        holder = 0
    if holder and holder != os.getpid() and pid_alive(holder):
        total = 79.19
        log("ERROR", "core.py:708", "EngineCore failed to start.")
        die_with_traceback(
            [("v1/engine/core.py", 699, "run_engine_core"), ("v1/worker/gpu_worker.py", 239, "init_device")],
            f"ValueError: Free memory on device (1.31/{total} GiB) on startup is less than desired GPU memory "
            f"utilization ({utilization}, {utilization * total:.2f} GiB). Decrease GPU memory utilization or reduce "
            f"GPU memory used by other processes. (simulated: pid {holder} holds the GPU)",
            ["RuntimeError: Engine core initialization failed. See root cause above. Failed core proc(s): {}"],
        )
    claim.write_text(f"{os.getpid()}\n")
    return claim


def release_gpu(claim: Path | None) -> None:
    try:
        if claim is not None and claim.read_text().strip() == str(os.getpid()):
            claim.unlink(missing_ok=True)
    except FileNotFoundError:
        pass


def kv_cache_too_small(max_model_len: int, kv_tokens: int) -> NoReturn:
    # vLLM V1's check (kv_cache_utils.check_enough_kv_cache_memory), with this model's 96 KiB of KV per token.
    per_token_gib = 96 / 2**20
    log("ERROR", "core.py:708", "EngineCore failed to start.")
    die_with_traceback(
        [("v1/engine/core.py", 699, "run_engine_core"),
         ("v1/core/kv_cache_utils.py", 699, "check_enough_kv_cache_memory")],
        f"ValueError: To serve at least one request with the models's max seq len ({max_model_len}), "
        f"({max_model_len * per_token_gib:.2f} GiB KV cache is needed, which is larger than the available KV cache "
        f"memory ({kv_tokens * per_token_gib:.2f} GiB). Based on the available memory, the estimated maximum model "
        f"length is {kv_tokens}. Try increasing `gpu_memory_utilization` or decreasing `max_model_len` when "
        "initializing the engine.",
        ["RuntimeError: Engine core initialization failed. See root cause above. Failed core proc(s): {}"],
    )


def env_float(name: str, default: float, minimum: float) -> float:
    raw = os.environ.get(name, "")
    try:
        value = float(raw) if raw else default
    except ValueError:
        value = minimum - 1
    if value < minimum:
        print(f"vllm-sim: {name} must be a number >= {minimum}, got {raw!r}", file=sys.stderr)
        sys.exit(2)
    return value


# ---------------------------------------------------------------- model directory checks


@dataclass(frozen=True)
class ModelInfo:
    architecture: str
    max_position_embeddings: int
    weight_bytes: int
    shards: int


def invalid_model_dir(model: str) -> NoReturn:
    log("ERROR", "core.py:708", "EngineCore failed to start.")
    die_with_traceback(
        [("transformers_utils/config.py", 504, "get_config")],
        f"ValueError: Invalid repository ID or local directory specified: '{model}'.",
        [
            "Please verify the following requirements:",
            "1. Provide a valid Hugging Face repository ID.",
            "2. Specify a local directory that contains a recognized configuration file.",
            "   - For Hugging Face models: ensure the presence of a 'config.json'.",
            "   - For Mistral models: ensure the presence of a 'params.json'.",
        ],
    )


def safetensors_error(path: Path, reason: str) -> NoReturn:
    log("ERROR", "core.py:708", "EngineCore failed to start.")
    die_with_traceback(
        [("model_executor/model_loader/weight_utils.py", 531, "safetensors_weights_iterator")],
        f"safetensors_rust.SafetensorError: Error while deserializing header: {reason} ({path})",
    )


def safetensors_tensor_names(path: Path) -> set[str]:
    """Validate one shard the way safetensors does on open: header length, JSON, and total file size."""
    if not path.is_file():
        log("ERROR", "core.py:708", "EngineCore failed to start.")
        die_with_traceback(
            [("model_executor/model_loader/weight_utils.py", 528, "safetensors_weights_iterator")],
            f"FileNotFoundError: [Errno 2] No such file or directory: '{path}'",
        )
    size = path.stat().st_size
    with path.open("rb") as handle:
        prefix = handle.read(8)
        if len(prefix) < 8:
            safetensors_error(path, "HeaderTooSmall")
        (header_len,) = struct.unpack("<Q", prefix)
        if header_len > size - 8:
            safetensors_error(path, "HeaderTooLarge")
        try:
            header = json.loads(handle.read(header_len))
        except (UnicodeDecodeError, json.JSONDecodeError):
            safetensors_error(path, "InvalidHeaderDeserialization")
    tensors = {k: v for k, v in header.items() if k != "__metadata__"}
    try:
        data_end = max((int(v["data_offsets"][1]) for v in tensors.values()), default=0)
    except (TypeError, KeyError, IndexError, ValueError):
        safetensors_error(path, "InvalidHeaderDeserialization")
    if size != 8 + header_len + data_end:
        safetensors_error(path, "MetadataIncompleteBuffer")
    return set(tensors)


def check_model_dir(model: str) -> ModelInfo:
    root = Path(model)
    config_path = root / "config.json"
    if not root.is_dir() or not config_path.is_file():
        invalid_model_dir(model)
    config = json.loads(config_path.read_text())
    index_path = root / "model.safetensors.index.json"
    if index_path.is_file():
        weight_map: dict[str, str] = json.loads(index_path.read_text())["weight_map"]
        shards = sorted(set(weight_map.values()))
    elif (root / "model.safetensors").is_file():
        weight_map, shards = {}, ["model.safetensors"]
    else:
        log("ERROR", "core.py:708", "EngineCore failed to start.")
        die_with_traceback(
            [("model_executor/model_loader/default_loader.py", 122, "_prepare_weights")],
            f"RuntimeError: Cannot find any model weights with `{model}`",
        )
    total = 0
    for shard in shards:
        names = safetensors_tensor_names(root / shard)
        missing = [t for t, s in weight_map.items() if s == shard and t not in names]
        if missing:
            log("ERROR", "core.py:708", "EngineCore failed to start.")
            die_with_traceback(
                [("model_executor/models/utils.py", 289, "load_weights")],
                f"ValueError: There is no module or parameter named '{missing[0]}' in {shard}",
            )
        total += (root / shard).stat().st_size
    architecture = (config.get("architectures") or ["UnknownForCausalLM"])[0]
    return ModelInfo(architecture, int(config.get("max_position_embeddings", 32768)), total, len(shards))


def oom_and_exit() -> NoReturn:
    log("ERROR", "core.py:708", "EngineCore failed to start.")
    die_with_traceback(
        [("v1/engine/core.py", 699, "run_engine_core"), ("v1/worker/gpu_model_runner.py", 3411, "profile_run")],
        "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of "
        "139.81 GiB of which 1.25 GiB is free. Including non-PyTorch memory, this process has 138.54 GiB memory "
        "in use. Of the allocated memory 135.20 GiB is allocated by PyTorch, and 1.10 GiB is reserved by PyTorch "
        "but unallocated. If reserved but unallocated memory is large try setting "
        "PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True to avoid fragmentation.  See documentation for Memory "
        "Management  (https://pytorch.org/docs/stable/notes/cuda.html#environment-variables)",
        ["RuntimeError: Engine core initialization failed. See root cause above. Failed core proc(s): {}"],
    )


# ---------------------------------------------------------------- the simulated model


UNSAFE_CALLS = {
    "strcpy": "copies a string with strcpy() without checking the size of the destination",
    "strcat": "appends with strcat() without checking the remaining space",
    "sprintf": "formats into a buffer with sprintf(), which has no length limit",
    "vsprintf": "formats into a buffer with vsprintf(), which has no length limit",
    "gets": "reads input with gets(), which cannot limit the length",
}
FILLER = [
    "I traced each memory access and the error paths.",
    "The control flow is short, so the relevant checks are easy to follow.",
    "I also considered how callers are likely to use this function.",
    "Integer conversions look consistent with the buffer sizes involved.",
]


def count_tokens(text: str) -> int:
    return len(TOKEN_RE.findall(text))


def truncate_tokens(text: str, n: int) -> str:
    if n <= 0:
        return ""
    for i, match in enumerate(TOKEN_RE.finditer(text)):
        if i == n - 1:
            return text[: match.end()]
    return text


def call_arguments(code: str, start: int) -> str:
    """Text between the parenthesis at `start` and its match (to the end of the code if unbalanced)."""
    depth = 0
    for i in range(start, len(code)):
        if code[i] == "(":
            depth += 1
        elif code[i] == ")":
            depth -= 1
            if depth == 0:
                return code[start + 1 : i]
    return code[start + 1 :]


def find_unsafe(code: str) -> list[str]:
    """Reasons the function looks vulnerable; a short list of classic C patterns, nothing clever."""
    findings = [text for name, text in UNSAFE_CALLS.items() if re.search(rf"\b{name}\s*\(", code)]
    # Without any comparison in the function, nothing bounds an index, a length or a size product.
    unchecked = not re.search(r"[<>]", re.sub(r"->|<<|>>", " ", code))
    for match in re.finditer(r"\bmem(?:cpy|move)\s*(\()", code):
        args = call_arguments(code, match.start(1)).split(",")
        if unchecked and len(args) >= 3 and "sizeof" not in ",".join(args[2:]):
            findings.append("copies memory with a length that is never checked against the destination size")
            break
    if unchecked and re.search(r"\b\w+\s*\[\s*[A-Za-z_]\w*\s*\]\s*=[^=]", code):
        findings.append("writes to an array with an index that is never checked against the array size")
    if unchecked and re.search(r"\b(?:malloc|alloca)\s*\([^;]*\w\s*\*\s*\w", code):
        findings.append("computes an allocation size with a multiplication that can overflow")
    for match in re.finditer(r"\bfree\s*\(\s*(\w+)\s*\)", code):
        if re.search(rf"\b{match.group(1)}\s*->", code[match.end():]):
            findings.append(f"uses `{match.group(1)}` after freeing it")
            break
    if re.search(r"\bsystem\s*\(", code):
        findings.append("passes a command string built from its input to system()")
    return findings


@dataclass(frozen=True)
class Reply:
    reasoning: str | None
    answer: str


def evaluated_code(user_text: str) -> str:
    blocks = CODE_BLOCK_RE.findall(user_text)
    return blocks[-1] if blocks else user_text  # the evaluated function is the last fenced block


@dataclass(frozen=True)
class Verdict:
    """What an answer profile decided for one request (VLLM_SIM_ANSWERS)."""
    vulnerable: bool
    rambling: bool  # no FINAL ANSWER line


def compose_reply(user_text: str, prompt: str, seed: int | None, thinking: bool,
                  verdict: Verdict | None = None) -> Reply:
    code = evaluated_code(user_text)
    name_match = FUNC_NAME_RE.search(code)
    name = f"`{name_match.group(1)}`" if name_match else "this function"
    findings = find_unsafe(code)
    if verdict is None:
        digest = hashlib.sha256(prompt.encode()).digest()
        flipped = digest[0] < 26  # ~10% of prompts
        rambling = digest[1] < 8  # ~3% of prompts
        vulnerable = bool(findings) != flipped
    else:
        vulnerable, rambling = verdict.vulnerable, verdict.rambling
    rng = random.Random(hashlib.sha256(f"{prompt}\x00{seed}".encode()).digest())

    if rambling:
        answer = (
            f"Let me consider {name} step by step. Whether it is safe depends on how its callers size the "
            "buffers, and without more context it is hard to be certain. The error handling might hide a "
            "problem, but it might also be fine as written."
        )
    else:
        if vulnerable and findings:
            body = f"The function {name} {findings[0]}. An attacker who controls the input can corrupt memory."
        elif vulnerable:
            body = f"The function {name} trusts a length taken from its input without validating it."
        elif findings:
            body = f"Although {name} {findings[0]}, the surrounding code appears to bound the input."
        else:
            body = f"The function {name} validates its inputs and uses only bounded memory operations."
        answer = f"{body} {rng.choice(FILLER)}\n\nFINAL ANSWER: {'YES' if vulnerable else 'NO'}"
    reasoning = None
    if thinking:
        seen = f"I notice it {findings[0]}." if findings else "Every write I can see is guarded."
        if verdict is not None and vulnerable and not findings:  # a profile's verdict: keep the reasoning with it
            seen = "I notice it trusts a length taken from its input without validating it."
        elif verdict is not None and not vulnerable and findings:
            seen = f"I notice it {findings[0]}, but the surrounding code appears to bound the input."
        reasoning = (
            f"Okay, let me look at {name}. I need to check buffer sizes, index bounds and pointer lifetimes. "
            f"{seen} {rng.choice(FILLER)} So overall it looks {'vulnerable' if vulnerable else 'safe'} to me."
        )
    return Reply(reasoning, answer)


@dataclass(frozen=True)
class Generation:
    content: str | None
    reasoning: str | None
    completion_tokens: int
    finish_reason: str


def generate(reply: Reply, max_tokens: int, split_reasoning: bool) -> Generation:
    """Cut the reply at max_tokens like a real decode; `</think>` counts as one token."""
    r_tokens = count_tokens(reply.reasoning) if reply.reasoning is not None else 0
    think_tokens = r_tokens + 1 if reply.reasoning is not None else 0
    total = think_tokens + count_tokens(reply.answer)
    finish = "stop" if total <= max_tokens else "length"
    reasoning = reply.reasoning
    answer: str | None = reply.answer
    if finish == "length":
        if reasoning is not None and max_tokens <= r_tokens:
            reasoning, answer = truncate_tokens(reasoning, max_tokens), None
        else:
            answer = truncate_tokens(reply.answer, max_tokens - think_tokens)
    if reasoning is None or split_reasoning:
        # deepseek_r1-style parser: reasoning apart; output cut before `</think>` leaves content null.
        return Generation(answer, reasoning, min(total, max_tokens), finish)
    # Thinking model without a parser: the chat template already opened <think>, so only the close shows.
    content = reasoning if answer is None else f"{reasoning}\n</think>\n\n{answer}"
    return Generation(content, None, min(total, max_tokens), finish)


# ---------------------------------------------------------------- answer profiles (VLLM_SIM_ANSWERS)


PLACEHOLDER_RE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")  # as the harness reads templates (harness/prompt.py)


class AnswersError(ValueError):
    pass


def normalise_source(func: str) -> str:
    """Whitespace-insensitive form of a function, as the harness compares sources."""
    return re.sub(r"\s+", " ", func).strip()


def template_fragments(template: str) -> tuple[str, ...]:
    """The template's non-empty, stripped static text between placeholders, in order."""
    return tuple(f for f in (part.strip() for part in PLACEHOLDER_RE.split(template)[::2]) if f)


def matched_chars(fragments: tuple[str, ...], prompt: str) -> int | None:
    """Static characters matched when every fragment occurs in the prompt in order (leftmost first); else None."""
    pos = 0
    for fragment in fragments:
        at = prompt.find(fragment, pos)
        if at < 0:
            return None
        pos = at + len(fragment)
    return sum(len(f) for f in fragments)


@dataclass(frozen=True)
class AnswerProfile:
    template_path: str
    fragments: tuple[str, ...]
    template_key: str  # sha256 of the template text: the strategy's identity in the per-strategy draws
    accuracy: float
    yes_bias: float = 0.5
    unparseable: float = 0.0

    def p_correct(self, label: int) -> float:
        error_share = self.yes_bias if label == 0 else 1 - self.yes_bias
        return 1 - min(1.0, 2 * (1 - self.accuracy) * error_share)


def make_profile(template_text: str, accuracy: float, yes_bias: float = 0.5, unparseable: float = 0.0,
                 template_path: str = "") -> AnswerProfile:
    return AnswerProfile(template_path, template_fragments(template_text),
                         hashlib.sha256(template_text.encode()).hexdigest(), accuracy, yes_bias, unparseable)


def match_profile(profiles: tuple[AnswerProfile, ...] | list[AnswerProfile], prompt: str) -> AnswerProfile | None:
    """The profile whose template matches the prompt with the most static characters (a tie: the first)."""
    best, best_chars = None, -1
    for profile in profiles:
        chars = matched_chars(profile.fragments, prompt)
        if chars is not None and chars > best_chars:
            best, best_chars = profile, chars
    return best


def uniform(*parts: str) -> float:
    """A uniform in [0, 1) from sha256 of the parts: the same on every run and machine."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def profile_verdict(profile: AnswerProfile, label: int, func_norm: str, model: str, seed: Any,
                    shared_latent: float) -> Verdict:
    """Correct iff u < P(correct | label); u is shared by the model's strategies with probability shared_latent."""
    sample = (func_norm, model, json.dumps(seed))
    if uniform("shared-or-own", *sample) < shared_latent:
        u = uniform("latent", *sample)
    else:
        u = uniform("latent", *sample, profile.template_key)
    correct = u < profile.p_correct(label)
    rambling = uniform("unparseable", *sample, profile.template_key) < profile.unparseable
    return Verdict(vulnerable=(label == 1) == correct, rambling=rambling)


def _fraction(obj: dict[str, Any], key: str, where: str, default: float | None) -> float:
    value = obj.get(key, default)
    if value is None:
        raise AnswersError(f"{where}: `{key}` is required (a number from 0 to 1)")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise AnswersError(f"{where}: `{key}` must be a number from 0 to 1, got {value!r}")
    return float(value)


def _only_keys(obj: Any, allowed: set[str], where: str) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise AnswersError(f"{where} must be a JSON object")
    unknown = sorted(set(obj) - allowed)
    if unknown:
        raise AnswersError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(allowed)}")
    return obj


def _read_text(path: Any, where: str) -> str:
    if not isinstance(path, str) or not path:
        raise AnswersError(f"{where} must be a non-empty path string, got {path!r}")
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise AnswersError(f"cannot read {where} {path}: {exc}") from exc


def load_labels(path: Any) -> tuple[dict[str, int], int]:
    """Normalised func -> target, and how many rows repeat a func with a different target (the first row wins)."""
    labels: dict[str, int] = {}
    conflicts = 0
    for lineno, line in enumerate(_read_text(path, "datasetPath").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"datasetPath {path}:{lineno}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise AnswersError(f"{where}: invalid JSON: {exc}") from exc
        if not isinstance(row, dict) or not isinstance(row.get("func"), str):
            raise AnswersError(f"{where}: expected an object with a string `func`")
        target = row.get("target")
        if isinstance(target, bool) or target not in (0, 1):
            raise AnswersError(f"{where}: `target` must be 0 or 1, got {target!r}")
        key = normalise_source(row["func"])
        if key in labels and labels[key] != target:
            conflicts += 1
            continue
        labels.setdefault(key, int(target))
    if not labels:
        raise AnswersError(f"datasetPath {path} has no rows")
    return labels, conflicts


@dataclass(frozen=True)
class Answers:
    dataset_path: str
    labels: dict[str, int]
    profiles: tuple[AnswerProfile, ...]
    shared_latent: float
    conflicts: int = 0


def parse_answers(raw: str) -> Answers:
    """Read VLLM_SIM_ANSWERS: validate it, load the dataset and the templates. Raises AnswersError."""
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise AnswersError(f"invalid JSON: {exc}") from exc
    config = _only_keys(config, {"datasetPath", "profiles", "sharedLatent"}, "the value")
    shared_latent = _fraction(config, "sharedLatent", "the value", 0.7)
    if not isinstance(config.get("profiles"), list):
        raise AnswersError("`profiles` must be a list")
    profiles = []
    for number, entry in enumerate(config["profiles"], start=1):
        where = f"profiles[{number - 1}]"
        entry = _only_keys(entry, {"templatePath", "accuracy", "yesBias", "unparseable"}, where)
        accuracy = _fraction(entry, "accuracy", where, None)
        yes_bias = _fraction(entry, "yesBias", where, 0.5)
        unparseable = _fraction(entry, "unparseable", where, 0.0)
        text = _read_text(entry.get("templatePath"), f"{where}.templatePath")
        profiles.append(make_profile(text, accuracy, yes_bias, unparseable, entry["templatePath"]))
    labels, conflicts = load_labels(config.get("datasetPath"))
    return Answers(config["datasetPath"], labels, tuple(profiles), shared_latent, conflicts)


def answers_from_env(raw: str) -> Answers | None:
    if not raw:
        return None
    try:
        return parse_answers(raw)
    except AnswersError as exc:
        print(f"vllm-sim: VLLM_SIM_ANSWERS: {exc}", file=sys.stderr)
        sys.exit(2)


@dataclass
class AnswerBook:
    """The loaded profiles at serving time, with the counts behind the (rate-limited) warnings."""
    answers: Answers
    model: str
    lock: threading.Lock = field(default_factory=threading.Lock)
    unmatched: int = 0
    unknown: int = 0

    def verdict(self, user_text: str, prompt: str, seed: Any) -> Verdict | None:
        """The profile's verdict for this request; None: answer it as without VLLM_SIM_ANSWERS."""
        profile = match_profile(self.answers.profiles, prompt)
        if profile is None:
            if CODE_BLOCK_RE.search(user_text):  # not an evaluation (a warm-up) otherwise: no warning
                with self.lock:
                    self.unmatched += 1
                    first = self.unmatched == 1
                if first:
                    log("WARNING", "vllm_sim", "VLLM_SIM_ANSWERS: a request's prompt matches none of the "
                        f"{len(self.answers.profiles)} profile template(s); such requests get the default answers "
                        "(warned once)")
            return None
        func_norm = normalise_source(evaluated_code(user_text))
        label = self.answers.labels.get(func_norm)
        if label is None:
            with self.lock:
                self.unknown += 1
                count = self.unknown
            if count & (count - 1) == 0:  # 1, 2, 4, 8, ...
                log("WARNING", "vllm_sim", f"VLLM_SIM_ANSWERS: {count} request(s) so far evaluated a function "
                    f"not in {self.answers.dataset_path}; those get the default answers")
            return None
        return profile_verdict(profile, label, func_norm, self.model, seed, self.answers.shared_latent)


# ---------------------------------------------------------------- server


@dataclass
class SimState:
    names: list[str]
    model_dir: str
    max_model_len: int
    reasoning_parser: str | None
    thinking: bool
    tokens_per_s: float
    crash_after: int | None
    crash_marker: Path | None
    api_key: str | None
    slots: threading.Semaphore
    answers: AnswerBook | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    prompt_tokens_total: int = 0
    generation_tokens_total: int = 0
    success: dict[str, int] = field(default_factory=lambda: {"stop": 0, "length": 0})
    running: int = 0
    waiting: int = 0
    completed: int = 0


class ApiError(Exception):
    def __init__(self, status: int, error_type: str, message: str) -> None:
        super().__init__(message)
        self.status, self.error_type, self.message = status, error_type, message


def message_text(message: Any) -> str:
    content = message.get("content") if isinstance(message, dict) else None
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    raise ApiError(400, "BadRequestError", "each message needs a string or text-part content")


def metrics_text(state: SimState) -> str:
    label = f'engine="0",model_name="{state.names[0]}"'
    lines = [
        "# HELP vllm:num_requests_running Number of requests in model execution batches.",
        "# TYPE vllm:num_requests_running gauge",
        f"vllm:num_requests_running{{{label}}} {float(state.running)}",
        "# HELP vllm:num_requests_waiting Number of requests waiting to be processed.",
        "# TYPE vllm:num_requests_waiting gauge",
        f"vllm:num_requests_waiting{{{label}}} {float(state.waiting)}",
        "# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.",
        "# TYPE vllm:kv_cache_usage_perc gauge",
        f"vllm:kv_cache_usage_perc{{{label}}} {min(1.0, state.running / 64):.4f}",
        "# HELP vllm:prompt_tokens_total Number of prefill tokens processed.",
        "# TYPE vllm:prompt_tokens_total counter",
        f"vllm:prompt_tokens_total{{{label}}} {float(state.prompt_tokens_total)}",
        "# HELP vllm:generation_tokens_total Number of generation tokens processed.",
        "# TYPE vllm:generation_tokens_total counter",
        f"vllm:generation_tokens_total{{{label}}} {float(state.generation_tokens_total)}",
        "# HELP vllm:request_success_total Count of successfully processed requests.",
        "# TYPE vllm:request_success_total counter",
    ]
    for reason, count in state.success.items():
        lines.append(f'vllm:request_success_total{{engine="0",finished_reason="{reason}",'
                     f'model_name="{state.names[0]}"}} {float(count)}')
    return "\n".join(lines) + "\n"


class SimServer(ThreadingHTTPServer):
    daemon_threads = True
    state: SimState


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: SimServer

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        # uvicorn's access-log line, as vLLM prints it
        status = int(code) if str(code).isdigit() else 0
        phrase = HTTPStatus(status).phrase if status else ""
        host, port = self.client_address[:2]
        print(f'INFO:     {host}:{port} - "{self.requestline}" {status} {phrase}', flush=True)

    def log_message(self, format: str, *args: Any) -> None:
        print(f"INFO:     {format % args}", flush=True)

    def send_body(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def send_json(self, status: int, payload: Any) -> None:
        self.send_body(status, json.dumps(payload).encode(), "application/json")

    def send_error_json(self, err: ApiError) -> None:
        self.send_json(err.status, {"error": {"message": err.message, "type": err.error_type,
                                              "param": None, "code": err.status}})

    def authorised(self) -> bool:
        key = self.server.state.api_key
        return key is None or self.headers.get("Authorization") == f"Bearer {key}"

    def do_GET(self) -> None:
        state = self.server.state
        if self.path == "/health":
            self.send_body(200, b"", "application/json")
        elif self.path == "/version":
            self.send_json(200, {"version": VERSION})
        elif self.path == "/metrics":
            with state.lock:
                text = metrics_text(state)
            self.send_body(200, text.encode(), "text/plain; version=0.0.4; charset=utf-8")
        elif self.path == "/v1/models":
            if not self.authorised():
                self.send_json(401, {"error": "Unauthorized"})
                return
            created = int(time.time())
            self.send_json(200, {"object": "list", "data": [
                {"id": name, "object": "model", "created": created, "owned_by": "vllm", "root": state.model_dir,
                 "parent": None, "max_model_len": state.max_model_len} for name in state.names]})
        else:
            self.send_json(404, {"detail": "Not Found"})

    def do_POST(self) -> None:
        if self.path != "/v1/chat/completions":
            self.send_json(404, {"detail": "Not Found"})
            return
        if not self.authorised():
            self.send_json(401, {"error": "Unauthorized"})
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
            try:
                body = json.loads(self.rfile.read(length) or b"null")
            except json.JSONDecodeError as exc:
                raise ApiError(400, "BadRequestError", f"invalid JSON body: {exc}") from exc
            answer = self.chat(body)
        except ApiError as err:
            self.send_error_json(err)
            return
        last = self.count_completed()
        self.send_json(200, answer)
        if last:
            self.crash()

    def count_completed(self) -> bool:
        """Counts an answer before it is sent, so exactly N answers leave a crash-after:N server.

        Returns whether this is the last answer. A request that finishes after the last one never gets its
        answer: it waits for the process to die, as an engine that died mid-request would leave it."""
        state = self.server.state
        with state.lock:
            dying = state.crash_after is not None and state.completed >= state.crash_after
            if not dying:
                state.completed += 1
            last = state.crash_after is not None and state.completed >= state.crash_after
        if dying:
            threading.Event().wait()
        return last

    def crash(self) -> None:
        state = self.server.state
        if state.crash_marker is not None:
            state.crash_marker.write_text(f"{os.getpid()}\n")
        log("ERROR", "core_client.py:564", "Engine core proc EngineCore_DP0 died unexpectedly, shutting down "
            f"client. (VLLM_SIM_FAULT crash-after:{state.crash_after})")
        os._exit(1)  # abrupt, like a dead engine: no shutdown, in-flight connections reset

    def chat(self, body: Any) -> dict[str, Any]:
        state = self.server.state
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list) or not body["messages"]:
            raise ApiError(400, "BadRequestError", "'messages' must be a non-empty list")
        if body.get("model") not in state.names:
            raise ApiError(404, "NotFoundError", f"The model `{body.get('model')}` does not exist.")
        if body.get("stream"):
            raise ApiError(400, "BadRequestError", "the simulator does not stream; send stream=false")
        messages = body["messages"]
        texts = [message_text(m) for m in messages]
        prompt = "\n".join(texts)
        prompt_tokens = sum(count_tokens(t) + 4 for t in texts)
        max_tokens = body.get("max_tokens", body.get("max_completion_tokens"))
        if max_tokens is None:
            max_tokens = state.max_model_len - prompt_tokens
        if not isinstance(max_tokens, int) or max_tokens < 1:
            raise ApiError(400, "BadRequestError", f"max_tokens must be at least 1, got {max_tokens}.")
        if prompt_tokens + max_tokens > state.max_model_len:
            raise ApiError(400, "BadRequestError", (
                f"This model's maximum context length is {state.max_model_len} tokens. However, you requested "
                f"{prompt_tokens + max_tokens} tokens ({prompt_tokens} in the messages, {max_tokens} in the "
                "completion). Please reduce the length of the messages or completion."))
        request_id = f"chatcmpl-{uuid.uuid4().hex}"
        seed = body.get("seed")
        log("INFO", "logger.py:41", (
            f"Received request {request_id}: params: SamplingParams(n={body.get('n', 1)}, "
            f"temperature={body.get('temperature', 1.0)}, top_p={body.get('top_p', 1.0)}, "
            f"top_k={body.get('top_k', 0)}, min_p={body.get('min_p', 0.0)}, seed={seed}, "
            f"presence_penalty={body.get('presence_penalty', 0.0)}, max_tokens={max_tokens}), "
            f"prompt tokens: {prompt_tokens}"))

        user_texts = [t for m, t in zip(messages, texts, strict=True)
                      if isinstance(m, dict) and m.get("role") == "user"]
        user_text = user_texts[-1] if user_texts else prompt
        verdict = state.answers.verdict(user_text, prompt, seed) if state.answers is not None else None
        reply = compose_reply(user_text, prompt, seed, state.thinking, verdict)
        gen = generate(reply, max_tokens, split_reasoning=state.reasoning_parser is not None)

        with state.lock:
            state.waiting += 1
        with state.slots:  # --max-num-seqs caps the running batch
            with state.lock:
                state.waiting -= 1
                state.running += 1
            try:
                time.sleep(gen.completion_tokens / state.tokens_per_s)
            finally:
                with state.lock:
                    state.running -= 1
        with state.lock:
            state.prompt_tokens_total += prompt_tokens
            state.generation_tokens_total += gen.completion_tokens
            state.success[gen.finish_reason] += 1

        message: dict[str, Any] = {"role": "assistant", "content": gen.content, "tool_calls": []}
        if state.reasoning_parser is not None:
            # vLLM 0.11 emits both names while `reasoning_content` is being renamed to `reasoning`.
            message["reasoning_content"] = gen.reasoning
            message["reasoning"] = gen.reasoning
        return {
            "id": request_id,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "choices": [{"index": 0, "message": message, "logprobs": None,
                         "finish_reason": gen.finish_reason, "stop_reason": None}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": gen.completion_tokens,
                      "total_tokens": prompt_tokens + gen.completion_tokens, "prompt_tokens_details": None},
            "prompt_logprobs": None,
        }


# ---------------------------------------------------------------- main


def serve(args: argparse.Namespace, defaults: dict[str, Any], extra: dict[str, str | bool]) -> int:
    fault = parse_fault(os.environ.get("VLLM_SIM_FAULT", ""))
    startup_delay = env_float("VLLM_SIM_STARTUP_DELAY_S", 1.0, 0.0)
    tokens_per_s = env_float("VLLM_SIM_TOKENS_PER_S", 2000.0, 1e-6)
    kv_cache_tokens = int(env_float("VLLM_SIM_KV_CACHE_TOKENS", 0.0, 0.0))  # 0: unlimited
    answers = answers_from_env(os.environ.get("VLLM_SIM_ANSWERS", ""))
    names = args.served_model_name or [args.model]
    state = state_dir()
    crash_after, crash_marker = fault.crash_after, None
    if fault.crash_once:
        if state is None:
            print("vllm-sim: crash-after:N:once needs VLLM_SIM_STATE_DIR or POD_WORKSPACE", file=sys.stderr)
            return 2
        crash_marker = state / ".vllm-sim-crashed"
        if crash_marker.exists():
            crash_after = None  # this pod's server already crashed once; the restarted one serves

    log("INFO", "api_server.py:1885", f"vLLM API server version {VERSION}")
    non_default = {k: v for k, v in vars(args).items() if k in defaults and v != defaults[k]}
    log("INFO", "utils.py:328", f"non-default args: {non_default | extra}")
    if answers is not None:
        log("INFO", "vllm_sim", f"VLLM_SIM_ANSWERS: {len(answers.profiles)} answer profile(s) "
            f"({', '.join(p.template_path for p in answers.profiles) or 'none'}), {len(answers.labels)} labelled "
            f"functions from {answers.dataset_path}, sharedLatent {answers.shared_latent}")
        if answers.conflicts:
            log("WARNING", "vllm_sim", f"VLLM_SIM_ANSWERS: {answers.conflicts} row(s) of {answers.dataset_path} "
                "repeat a function with another target; the first row's target is used")
    info = check_model_dir(args.model)
    max_model_len = args.max_model_len or info.max_position_embeddings
    log("INFO", "model.py:547", f"Resolved architecture: {info.architecture}")
    log("INFO", "model.py:1510", f"Using max model len {max_model_len}")
    log("INFO", "config.py:2434", f"Chunked prefill is enabled with max_num_batched_tokens="
        f"{args.max_num_batched_tokens or 8192}.")

    claim = claim_gpu(state, args.gpu_memory_utilization)
    try:
        load_started = time.monotonic()
        time.sleep(startup_delay * 0.4)
        load_s = time.monotonic() - load_started
        log("INFO", "default_loader.py:267", f"Loading weights took {load_s:.2f} seconds")
        log("INFO", "gpu_model_runner.py:2653", f"Model loading took {info.weight_bytes / 2**30:.4f} GiB and "
            f"{load_s + 0.01:.6f} seconds")
        if fault.oom:
            oom_and_exit()
        if kv_cache_tokens and max_model_len > kv_cache_tokens:
            kv_cache_too_small(max_model_len, kv_cache_tokens)
        time.sleep(startup_delay * 0.6)
        log("INFO", "core.py:210", "init engine (profile, create kv cache, warmup model) took "
            f"{startup_delay * 0.6:.2f} seconds")

        try:
            server = SimServer((args.host, args.port), Handler)
        except OSError as exc:
            log("ERROR", "api_server.py:1900", f"[Errno {exc.errno}] error while attempting to bind on address "
                f"({args.host!r}, {args.port}): {exc.strerror}")
            return 1
        thinking = args.reasoning_parser is not None or any("thinking" in n.lower() for n in [*names, args.model])
        server.state = SimState(
            names=names, model_dir=args.model, max_model_len=max_model_len, reasoning_parser=args.reasoning_parser,
            thinking=thinking, tokens_per_s=tokens_per_s, crash_after=crash_after, crash_marker=crash_marker,
            api_key=args.api_key, slots=threading.Semaphore(args.max_num_seqs),
            answers=AnswerBook(answers, names[0]) if answers is not None else None)

        def on_sigterm(_signum: int, _frame: Any) -> None:
            raise SystemExit(0)

        signal.signal(signal.SIGTERM, on_sigterm)
        log("INFO", "api_server.py:1971", f"Starting vLLM API server on http://{args.host}:{args.port}")
        log("INFO", "launcher.py:37", "Available routes are: /health, /v1/models, /v1/chat/completions, /metrics, "
            "/version")
        print("INFO:     Application startup complete.", flush=True)
        try:
            server.serve_forever()
        finally:
            print("INFO:     Shutting down", flush=True)
            server.server_close()
        return 0
    finally:
        release_gpu(claim)  # a crash (os._exit) skips this: the claim then names a dead pid, which frees it


def main(argv: list[str]) -> int:
    parser, serve_parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    defaults = vars(serve_parser.parse_args(["<model>"]))
    return serve(args, defaults, accept_extra_flags(unknown, serve_parser))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
