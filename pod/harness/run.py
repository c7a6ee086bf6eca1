"""Entry point: `python3 -m harness.run --spec <runDir>/spec.json` (contract: docs/architecture.md).

One invocation is one attempt at a run: idle baseline, then every sample not yet in predictions.jsonl
inside a CodeCarbon window, then metrics over all attempts. Any failure leaves progress.json `failed`.
"""

from __future__ import annotations

import argparse
import fcntl
import logging
import os
import signal
import sys
import threading
import time
from concurrent.futures import CancelledError, ThreadPoolExecutor, as_completed
from pathlib import Path
from types import FrameType
from typing import Any

from . import environment
from .client import ChatResult, SampleRequestError, VllmClient
from .dataset import DatasetError, Sample, load_dataset, load_examples
from .energy import EnergyWindow, MeasurementError, clear_stale_lock, require_codecarbon
from .metrics import build_metrics
from .parse import parse_answer, split_output
from .prompt import PromptBuilder, PromptError, check_examples, load_template, render_examples
from .spec import Spec, SpecError, load_spec
from .store import PredictionStore, Progress, append_jsonl, atomic_write_json, now_iso, read_jsonl

log = logging.getLogger("harness")


class Terminated(Exception):
    """SIGTERM from the orchestrator: stop, still closing the energy window and marking the run failed."""


class Aborted(Exception):
    """A queued request skipped because the run is already failing."""


def setup_logging(path: Path) -> None:
    file_handler = logging.FileHandler(path, encoding="utf-8")
    file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(file_handler)
    root.setLevel(logging.INFO)
    # codecarbon turns propagation off at import; its warnings (CPU fallback, lock) belong in harness.log
    logging.getLogger("codecarbon").propagate = True
    log.addHandler(logging.StreamHandler(sys.stderr))


def request_body(spec: Spec, prompt: str) -> dict[str, Any]:
    s = spec.sampling
    # Every sampling field explicit: vLLM otherwise fills gaps from generation_config.json (pod-side.md 2.1).
    return {"model": spec.served_model_name, "messages": [{"role": "user", "content": prompt}],
            "temperature": s.temperature, "top_p": s.top_p, "top_k": s.top_k, "min_p": s.min_p,
            "max_tokens": s.max_tokens, "seed": s.seed, "stream": False}


def sampling_record(spec: Spec) -> dict[str, Any]:
    """The sampling fields and seed each request carried, kept with its record."""
    s = spec.sampling
    return {"temperature": s.temperature, "top_p": s.top_p, "top_k": s.top_k, "min_p": s.min_p,
            "max_tokens": s.max_tokens, "seed": s.seed}


def prediction_record(sample: Sample, result: ChatResult, spec: Spec) -> dict[str, Any]:
    split = split_output(result.content, result.reasoning, spec.thinking, result.finish_reason)
    prediction = parse_answer(split.answer)
    return {"id": sample.id, "label": sample.label, "raw_output": split.answer, "reasoning": split.reasoning,
            "prediction": prediction, "parsed": prediction is not None, "finish_reason": result.finish_reason,
            "prompt_tokens": result.prompt_tokens, "completion_tokens": result.completion_tokens,
            "latency_ms": round(result.latency_ms, 1), "sampling": sampling_record(spec), "error": None}


def error_record(sample: Sample, error: SampleRequestError, spec: Spec) -> dict[str, Any]:
    return {"id": sample.id, "label": sample.label, "raw_output": None, "reasoning": None, "prediction": None,
            "parsed": False, "finish_reason": None, "prompt_tokens": None, "completion_tokens": None,
            "latency_ms": None, "sampling": sampling_record(spec), "error": str(error)}


def run_requests(spec: Spec, client: VllmClient, builder: PromptBuilder, pending: list[Sample],
                 store: PredictionStore, progress: Progress) -> None:
    """Send pending samples at fixed concurrency; the main thread alone writes records and progress."""
    abort = threading.Event()

    def work(sample: Sample) -> dict[str, Any]:
        if abort.is_set():
            raise Aborted()
        try:
            return prediction_record(sample, client.chat(request_body(spec, builder.render(sample.func))), spec)
        except SampleRequestError as exc:
            log.warning("sample %s not served: %s", sample.id, exc)
            return error_record(sample, exc, spec)
        except Exception:
            abort.set()  # at once, so this worker and the others take no further queued samples
            raise

    first_error: BaseException | None = None
    pool = ThreadPoolExecutor(max_workers=spec.concurrency, thread_name_prefix="request")
    progress.update(stage="inference")
    started = time.monotonic()
    completion_tokens = 0
    try:
        futures = [pool.submit(work, sample) for sample in pending]
        for future in as_completed(futures):
            try:
                record = future.result()
            except (Aborted, CancelledError):
                continue
            except Exception as exc:
                if first_error is None:  # in-flight requests that still succeed are kept
                    first_error = exc
                    log.error("request failed, stopping the run: %s", exc)
                continue
            store.append(record)
            completion_tokens += int(record.get("completion_tokens") or 0)
            elapsed = time.monotonic() - started
            progress.update(done=progress.done + 1, tokens_per_s=completion_tokens / elapsed if elapsed > 0 else None)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    if first_error is not None:
        raise first_error


def measure_baseline(spec: Spec) -> dict[str, Any] | None:
    """Idle energy with the model loaded, in its own tracker (no CSV row), written to baseline.json.

    baselineSeconds 0 skips it; the GPU energy net of baseline is then null."""
    if spec.baseline_seconds <= 0:
        atomic_write_json(spec.output_dir / "baseline.json", {"requested_s": 0, "skipped": True})
        return None
    window = EnergyWindow(spec, f"{spec.run_id}-baseline", save_to_file=False)
    started_at = now_iso()
    with window:
        time.sleep(spec.baseline_seconds)
    energy = window.from_tracker()
    seconds = energy.duration_s or spec.baseline_seconds
    baseline = {
        **energy.to_dict(),
        "requested_s": spec.baseline_seconds,
        "started_at": started_at,
        "ended_at": now_iso(),
        # averages over the window (energy / duration), not CodeCarbon's last-interval power columns
        "gpu_power_w": energy.gpu_kwh * 3.6e6 / seconds,
        "cpu_power_w": energy.cpu_kwh * 3.6e6 / seconds,
        "ram_power_w": energy.ram_kwh * 3.6e6 / seconds,
        "nvml_gpu_power_w": energy.nvml_kwh * 3.6e6 / seconds if energy.nvml_kwh is not None else None,
    }
    atomic_write_json(spec.output_dir / "baseline.json", baseline)
    log.info("baseline: %.1fs idle, GPU %.1f W", seconds, baseline["gpu_power_w"])
    return baseline


def run_attempt(spec: Spec, client: VllmClient, builder: PromptBuilder, pending: list[Sample],
                store: PredictionStore, progress: Progress, attempts_path: Path) -> None:
    """Baseline plus measured inference; appends this attempt's record to attempts.jsonl whatever happens."""
    attempt: dict[str, Any] = {"attempt": len(read_jsonl(attempts_path)) + 1, "started_at": now_iso(),
                               "done_before": progress.done, "done_after": progress.done,
                               "baseline": None, "inference": None, "error": None}
    try:
        clear_stale_lock()
        progress.update(stage="baseline")
        attempt["baseline"] = measure_baseline(spec)
        window = EnergyWindow(spec, spec.run_id, save_to_file=True)
        inference_error: BaseException | None = None
        try:
            with window:  # the tracker stops on the way out, error or not
                run_requests(spec, client, builder, pending, store, progress)
        except BaseException as exc:
            inference_error = exc
        attempt["done_after"] = progress.done
        try:
            attempt["inference"] = window.from_csv().to_dict()
        except MeasurementError as exc:
            if inference_error is None:
                raise
            log.error("%s", exc)  # the inference error is the one reported
        if inference_error is not None:
            raise inference_error
    except BaseException as exc:
        attempt["error"] = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        attempt["ended_at"] = now_iso()
        append_jsonl(attempts_path, attempt)


def run(spec: Spec, progress: Progress) -> None:
    out = spec.output_dir
    (out / "metrics.json").unlink(missing_ok=True)  # only a finished run has metrics
    codecarbon_version = require_codecarbon()

    dataset = load_dataset(spec.dataset_path, spec.limit)
    if dataset.duplicates:
        log.warning("dataset: dropped %d rows with a duplicate idx (first copy kept)", dataset.duplicates)
    template = load_template(spec.prompt_template_path, few_shot=spec.few_shot_path is not None)
    examples_text = ""
    if spec.few_shot_path is not None:
        examples = load_examples(spec.few_shot_path)
        check_examples(examples, dataset, spec.few_shot_path)
        examples_text = render_examples(examples)
    builder = PromptBuilder(template, examples_text)

    store = PredictionStore(out / "predictions.jsonl")
    recorded = store.load()
    wanted = [s.id for s in dataset.samples]
    done_ids = recorded.keys() & set(wanted)
    if len(recorded) > len(done_ids):
        log.warning("predictions.jsonl has %d ids outside this selection; ignored", len(recorded) - len(done_ids))
    pending = [s for s in dataset.samples if s.id not in done_ids]
    progress.update(done=len(done_ids), total=len(wanted))
    log.info("run %s: %d samples, %d already recorded, %d to request", spec.run_id, len(wanted), len(done_ids),
             len(pending))

    client = VllmClient(spec.base_url, spec.request_timeout_s)
    env = environment.collect(client, codecarbon_version, spec.gpu_indices)
    atomic_write_json(out / "environment.json", env)
    attempts_path = out / "attempts.jsonl"
    if pending:
        run_attempt(spec, client, builder, pending, store, progress, attempts_path)

    progress.update(stage="finishing")
    records = store.load()
    final = [records[i] for i in wanted]
    metrics = build_metrics(spec.run_id, spec.served_model_name, final, read_jsonl(attempts_path),
                            rapl=env["rapl_readable"], gpu_present=env["nvml_available"])
    atomic_write_json(out / "metrics.json", metrics)
    progress.update(state="done", done=len(final))
    log.info("run %s done: accuracy %.3f, f1 %.3f, unparseable %d", spec.run_id, metrics["accuracy"],
             metrics["f1"], metrics["unparseable"])


def _terminate(_signum: int, _frame: FrameType | None) -> None:
    raise Terminated("terminated by SIGTERM")


EXIT_ALREADY_RUNNING = 3
_run_lock: int | None = None  # held (open) for the life of the process; the kernel releases it on exit


def claim_run(out: Path) -> int | None:
    """One harness per run directory: an exclusive flock on `harness.lock`, which holds the owner's pid.

    A second start (a retried start command whose first answer was lost with the SSH connection) finds the lock
    held and returns the owner's pid instead of running the samples twice; None means this process owns the run.
    """
    global _run_lock
    fd = os.open(out / "harness.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        owner = os.read(fd, 64).decode(errors="replace").strip()
        os.close(fd)
        return int(owner) if owner.isdigit() else -1
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    _run_lock = fd
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m harness.run")
    parser.add_argument("--spec", required=True, type=Path)
    args = parser.parse_args(argv)
    try:
        spec = load_spec(args.spec)
    except SpecError as exc:
        print(f"harness: invalid spec: {exc}", file=sys.stderr)
        if args.spec.parent.is_dir():  # the spec lives in its run directory (contract)
            Progress(args.spec.parent / "progress.json").update(state="failed", error=f"invalid spec: {exc}")
        return 2

    out = spec.output_dir
    out.mkdir(parents=True, exist_ok=True)
    owner = claim_run(out)
    if owner is not None:
        # Leave progress.json and the logs to the running owner; point harness.pid back at it for re-attaching.
        if owner > 0:
            (out / "harness.pid").write_text(f"{owner}\n")
        print(f"harness: run {spec.run_id} is already running (pid {owner}); not starting a second one",
              file=sys.stderr)
        return EXIT_ALREADY_RUNNING
    setup_logging(out / "harness.log")
    (out / "harness.pid").write_text(f"{os.getpid()}\n")
    progress = Progress(out / "progress.json")
    progress.update(state="running")
    signal.signal(signal.SIGTERM, _terminate)
    try:
        run(spec, progress)
    except (DatasetError, PromptError) as exc:
        # The study's inputs are refused (a label field in a template, few-shot overlap, a bad row): no retry helps.
        log.error("run %s: invalid input: %s", spec.run_id, exc)
        progress.update(state="failed", error=f"invalid input: {exc}")
        return 2
    except BaseException as exc:  # includes Terminated and KeyboardInterrupt: always leave `failed` behind
        log.exception("run %s failed", spec.run_id)
        progress.update(state="failed", error=f"{type(exc).__name__}: {exc}")
        return 143 if isinstance(exc, Terminated) else 1
    return 0


if __name__ == "__main__":
    code = main()
    logging.shutdown()
    os._exit(code)  # do not wait for request threads still blocked on a dead or stuck server
