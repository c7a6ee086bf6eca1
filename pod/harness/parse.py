"""Answer extraction: reasoning kept apart, then a strict FINAL ANSWER parser."""

from __future__ import annotations

import re
from dataclasses import dataclass

# Exactly `FINAL ANSWER: YES|NO` on its own line (surrounding spaces allowed); no case folding or markdown.
FINAL_ANSWER_RE = re.compile(r"^[ \t]*FINAL ANSWER:[ \t]*(YES|NO)[ \t]*$", re.MULTILINE)
THINK_CLOSE = "</think>"
THINK_OPEN = "<think>"


@dataclass(frozen=True)
class SplitOutput:
    answer: str | None
    reasoning: str | None


def parse_answer(answer: str | None) -> int | None:
    """1 for vulnerable, 0 for not, None when unparseable. The last FINAL ANSWER line wins."""
    if not answer:
        return None
    matches = FINAL_ANSWER_RE.findall(answer)
    if not matches:
        return None
    return 1 if matches[-1] == "YES" else 0


def _join(*parts: str | None) -> str | None:
    kept = [p.strip() for p in parts if p and p.strip()]
    return "\n\n".join(kept) if kept else None


def split_output(
    content: str | None, reasoning_field: str | None, thinking: bool, finish_reason: str | None
) -> SplitOutput:
    """Separate reasoning from the answer so the parser never reads a FINAL ANSWER the model only considered.

    A reasoning parser returns reasoning in its own field. Without one, a thinking model emits
    `reasoning</think>answer` (the template already opened <think>), so split on the last `</think>`;
    if it was cut off by max_tokens before `</think>`, everything it wrote is reasoning.
    """
    if thinking and content is not None:
        if THINK_CLOSE in content:
            before, _, after = content.rpartition(THINK_CLOSE)
            before = before.replace(THINK_OPEN, "", 1) if before.lstrip().startswith(THINK_OPEN) else before
            return SplitOutput(answer=after, reasoning=_join(reasoning_field, before))
        if reasoning_field is None and finish_reason == "length":
            return SplitOutput(answer=None, reasoning=_join(content))
    return SplitOutput(answer=content, reasoning=_join(reasoning_field))
