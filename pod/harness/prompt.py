"""Prompt templates: `{func}` and `{examples}` placeholders, with label-leak and few-shot overlap guards."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from .dataset import Dataset, Example, normalise_source, read_regular_file

PLACEHOLDER_RE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
ALLOWED_PLACEHOLDERS = frozenset({"func", "examples"})
# Dataset fields that reveal or point at the label (reference/pod-side.md 4.2); never allowed in a prompt.
LABEL_FIELDS = frozenset({"target", "commit_message", "cve", "cve_desc", "cwe", "nvd_url", "commit_url"})


class PromptError(ValueError):
    pass


def _leaks(text: str) -> list[str]:
    return sorted({name for name in PLACEHOLDER_RE.findall(text) if name in LABEL_FIELDS})


def load_template(path: Path, few_shot: bool) -> str:
    try:
        text = read_regular_file(path)
    except (OSError, UnicodeDecodeError) as exc:
        raise PromptError(f"cannot read prompt template {path}: {exc}") from exc
    leaks = _leaks(text)
    if leaks:
        raise PromptError(f"label leak: template {path} references label-revealing field(s) "
                          f"{', '.join('{' + name + '}' for name in leaks)}")
    unknown = sorted(set(PLACEHOLDER_RE.findall(text)) - ALLOWED_PLACEHOLDERS)
    if unknown:
        raise PromptError(f"template {path} has unknown placeholder(s) {unknown}; only {{func}} and {{examples}}")
    if "{func}" not in text:
        raise PromptError(f"template {path} has no {{func}} placeholder")
    if few_shot and "{examples}" not in text:
        raise PromptError(f"fewShotPath is set but template {path} has no {{examples}} placeholder")
    if not few_shot and "{examples}" in text:
        raise PromptError(f"template {path} has an {{examples}} placeholder but fewShotPath is null")
    return text


def check_examples(examples: list[Example], dataset: Dataset, path: Path) -> None:
    """Refuse examples that leak labels or that are themselves evaluated samples."""
    for number, example in enumerate(examples, start=1):
        where = f"few-shot example {number} in {path}"
        leaks = _leaks(example.func + "\n" + (example.explanation or ""))
        if leaks:
            raise PromptError(f"label leak: {where} references label-revealing field(s) {leaks}")
        if example.idx is not None and example.idx in dataset.all_ids:
            raise PromptError(f"few-shot overlap: {where} has idx {example.idx!r}, which is in the evaluated dataset")
        if normalise_source(example.func) in dataset.all_funcs:
            raise PromptError(f"few-shot overlap: {where} has the same func as a sample in the evaluated dataset")


def render_examples(examples: list[Example]) -> str:
    blocks = []
    for number, example in enumerate(examples, start=1):
        explanation = f"{example.explanation.strip()}\n" if example.explanation else ""
        verdict = "YES" if example.target == 1 else "NO"
        blocks.append(f"Example {number}:\n```c\n{example.func.strip()}\n```\n{explanation}FINAL ANSWER: {verdict}")
    return "\n\n".join(blocks)


@dataclass(frozen=True)
class PromptBuilder:
    template: str
    examples_text: str

    def render(self, func: str) -> str:
        # One pass, so braces inside the inserted code are never read as placeholders.
        values = {"func": func, "examples": self.examples_text}
        return PLACEHOLDER_RE.sub(lambda m: values[m.group(1)], self.template)
