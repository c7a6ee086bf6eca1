"""The worker's preflight: harness.check's rules, dataset facts, and prompt token counts with each model's real
tokenizer, so a study whose longest prompt does not fit is refused before any pod is rented.

`python -m harness.preflight` reads JSON on stdin: harness.check's input plus
  "tokenizers": [{"key": str, "tokenizerJsonPath": str, "tokenizerConfigPath": str | null, "thinking": bool}]
and prints one JSON object: {"check": <check()>, "dataset": {...} | null, "tokens": [...]} (see `preflight`).
Exit 0 whenever it could check (problems or not); 2 on unusable input (a tokenizer that cannot be loaded included).
Needs `tokenizers` (and `jinja2` for chat templates), installed on the worker only: they are imported inside the
functions that use them, so the rest of the harness stays standard-library Python on pods.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .check import check
from .dataset import DatasetError, SampleId, _read_jsonl, load_dataset, load_examples, read_regular_file
from .prompt import PromptBuilder, PromptError, load_template, render_examples

REQUIRED_FIELDS = ("func", "target", "idx")
CHATML_OPEN, CHATML_CLOSE, THINK_OPEN = "<|im_start|>", "<|im_end|>", "<think>"


class PreflightInputError(ValueError):
    """A tokenizer that cannot be used: the worker's own download is broken, not the study."""


def _sample_key(idx: Any) -> SampleId | None:
    return idx if isinstance(idx, (int, str)) and not isinstance(idx, bool) else None


def dataset_facts(path: Path) -> dict[str, Any] | None:
    """Facts over the raw rows (also when load_dataset refuses them); None when the file cannot be read as JSONL."""
    try:
        sha256 = hashlib.sha256(read_regular_file(path).encode("utf-8")).hexdigest()  # utf-8 round-trips exactly
        rows = [row for _, row in _read_jsonl(path, "dataset")]
    except (OSError, UnicodeDecodeError, DatasetError):
        return None
    fields: Counter[str] = Counter(name for row in rows for name in row)
    first: dict[SampleId, dict[str, Any]] = {}  # the first copy wins, as in load_dataset; dicts keep file order
    copies: Counter[SampleId] = Counter()
    for row in rows:
        if (key := _sample_key(row.get("idx"))) is not None:
            first.setdefault(key, row)
            copies[key] += 1
    missing = {name: sum(1 for row in rows if row.get(name) is None) for name in REQUIRED_FIELDS}
    return {
        "sha256": sha256, "rows": len(rows), "unique": len(first),
        "duplicateIds": [key for key in first if copies[key] > 1],
        "labels": {"vulnerable": sum(1 for r in first.values() if r.get("target") == 1),
                   "benign": sum(1 for r in first.values() if r.get("target") == 0)},
        "fields": dict(fields),
        "requiredMissing": [f"{name}: missing in {n} of {len(rows)} rows" for name, n in missing.items() if n],
    }


@dataclass(frozen=True)
class Framing:
    name: str  # "chat-template" | "chatml" | "none"
    note: str
    template: Any = None  # a compiled jinja2 template for "chat-template"
    variables: dict[str, Any] | None = None
    suffix: str = ""  # after the ChatML generation prompt

    def wrap(self, prompt: str) -> str:
        messages = [{"role": "user", "content": prompt}]
        if self.name == "chat-template":
            return str(self.template.render(messages=messages, add_generation_prompt=True, **(self.variables or {})))
        if self.name == "chatml":
            return f"{CHATML_OPEN}user\n{prompt}{CHATML_CLOSE}\n{CHATML_OPEN}assistant\n{self.suffix}"
        return prompt


def _token_text(value: Any) -> str | None:
    """A special token in tokenizer_config.json: a string, or an AddedToken-like {"content": ...}."""
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else None


def _compile_chat_template(source: str) -> Any:
    """As transformers compiles it for apply_chat_template (which is what vLLM calls)."""
    from jinja2.exceptions import TemplateError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise TemplateError(message)

    def tojson(value: Any, ensure_ascii: bool = False, indent: int | None = None,
               separators: Any = None, sort_keys: bool = False) -> str:
        return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    return env.from_string(source)


def _check_added_tokens(tokenizer: Any, text: str) -> None:
    """Every added token written out in the rendered text must encode as its one id, or the count is wrong."""
    ids = set(tokenizer.encode(text, add_special_tokens=False).ids)
    lost = [t.content for i, t in tokenizer.get_added_tokens_decoder().items() if t.content in text and i not in ids]
    if lost:
        raise PreflightInputError(f"the tokenizer does not encode {lost} in its chat template as added tokens")


def choose_framing(tokenizer: Any, config_path: str | None, thinking: bool) -> Framing:
    has_chatml = tokenizer.token_to_id(CHATML_OPEN) is not None and tokenizer.token_to_id(CHATML_CLOSE) is not None
    fallback = ""
    if config_path is not None:
        try:
            config = json.loads(read_regular_file(Path(config_path)))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise PreflightInputError(f"cannot read tokenizer config {config_path}: {exc}") from exc
        source = config.get("chat_template") if isinstance(config, dict) else None
        if not isinstance(source, str):
            fallback = "tokenizer_config.json has no string chat_template; "
        else:
            try:
                template = _compile_chat_template(source)
                variables = {name: text for name in ("bos_token", "eos_token")
                             if (text := _token_text(config.get(name))) is not None}
                note = ("tokenizer_config.json's chat_template rendered for one user message with "
                        "add_generation_prompt (any think block is the template's own), special tokens as added tokens")
                framing = Framing("chat-template", note, template, variables)
                _check_added_tokens(tokenizer, framing.wrap("probe"))  # a template that raises fails here, once
                return framing
            except PreflightInputError:
                raise
            except ImportError:
                fallback = "jinja2 is not installed; "
            except Exception as exc:  # jinja2 errors and whatever the template raises
                fallback = f"chat_template did not render ({type(exc).__name__}: {exc}); "
    if has_chatml:
        suffix = f"{THINK_OPEN}\n" if thinking and tokenizer.token_to_id(THINK_OPEN) is not None else ""
        return Framing("chatml", f"{fallback}counted ChatML framing of one user message and the assistant opening"
                       + (" plus <think>\\n" if suffix else ""), suffix=suffix)
    return Framing("none", f"{fallback}no chat framing counted: no chat template and no ChatML tokens, "
                   "so this is a lower bound")


def load_tokenizer(path: str) -> Any:
    from tokenizers import Tokenizer

    try:
        tokenizer = Tokenizer.from_file(path)
    except Exception as exc:  # tokenizers raises its own Exception for a missing or malformed file
        raise PreflightInputError(f"cannot load tokenizer {path}: {exc}") from exc
    tokenizer.encode_special_tokens = False  # the rendered text's <|im_start|> etc. must map to the added tokens
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


def prompt_builders(prompts: list[dict[str, Any]]) -> list[PromptBuilder] | None:
    """The harness's PromptBuilder per prompt, as harness.run builds it; None if any cannot be built."""
    builders = []
    try:
        for prompt in prompts:
            few_shot = prompt.get("fewShotPath")
            template = load_template(Path(prompt["templatePath"]), few_shot=few_shot is not None)
            examples = render_examples(load_examples(Path(few_shot))) if few_shot is not None else ""
            builders.append(PromptBuilder(template, examples))
    except (PromptError, DatasetError):
        return None
    return builders


def token_counts(raw: dict[str, Any]) -> list[dict[str, Any]]:
    try:
        samples = load_dataset(Path(raw["datasetPath"]), None).samples
    except DatasetError:
        return []
    builders = prompt_builders(raw["prompts"])
    if builders is None:
        return []
    entries = []
    for spec in raw["tokenizers"]:
        tokenizer = load_tokenizer(spec["tokenizerJsonPath"])
        framing = choose_framing(tokenizer, spec.get("tokenizerConfigPath"), spec["thinking"])
        for prompt, builder in zip(raw["prompts"], builders):
            texts = [framing.wrap(builder.render(sample.func)) for sample in samples]
            # Parallel in Rust; _fast skips the character offsets, which a count does not need.
            lengths = [len(e.ids) for e in tokenizer.encode_batch_fast(texts, add_special_tokens=False)]
            longest = max(range(len(lengths)), key=lengths.__getitem__)
            entries.append({
                "key": spec["key"], "prompt": prompt["name"], "framing": framing.name, "framingNote": framing.note,
                "maxTokens": lengths[longest], "maxId": samples[longest].id, "totalTokens": sum(lengths),
                "counts": [[sample.id, n] for sample, n in zip(samples, lengths)],
            })
    return entries


def preflight(raw: dict[str, Any]) -> dict[str, Any]:
    return {"check": check(raw), "dataset": dataset_facts(Path(raw["datasetPath"])), "tokens": token_counts(raw)}


def _check_tokenizer_spec(spec: Any) -> None:
    if not (isinstance(spec, dict) and isinstance(spec.get("key"), str) and isinstance(spec.get("thinking"), bool)
            and isinstance(spec.get("tokenizerJsonPath"), str)
            and isinstance(spec.get("tokenizerConfigPath"), (str, type(None)))):
        raise TypeError(f"a tokenizer needs key, tokenizerJsonPath, tokenizerConfigPath (or null), thinking: {spec!r}")


def main() -> int:
    try:
        raw = json.loads(sys.stdin.read())
        if (not isinstance(raw, dict) or not isinstance(raw.get("prompts"), list)
                or not isinstance(raw.get("tokenizers"), list)):
            raise ValueError("expected an object with datasetPath, prompts, codecarbon and tokenizers")
        for spec in raw["tokenizers"]:
            _check_tokenizer_spec(spec)
        result = preflight(raw)
    except (ValueError, KeyError, TypeError, ImportError) as exc:
        print(f"harness.preflight: unusable input: {exc!r}", file=sys.stderr)
        return 2
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
