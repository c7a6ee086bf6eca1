"""The simulated vLLM's answer profiles (VLLM_SIM_ANSWERS): template matching, realised accuracy and yesBias,
unparseable share, pairing through the shared latent, the served verdicts, and startup failures.

Tolerances: every draw is a sha256 uniform, so a realised count is one fixed sample of a binomial. The bands below are
about 4 binomial standard deviations wide (stated at each assert): wide enough not to depend on the particular hash
values, narrow enough to catch a wrong formula (e.g. a swapped yesBias, or a latent not shared across strategies).
"""

from __future__ import annotations

import hashlib
import json
import math
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import PROMPTS, REPO, SERVED_NAME, VLLM_BIN, Sim, child_env, free_port
from harness.dataset import Sample, load_dataset, load_examples
from harness.prompt import PromptBuilder, load_template, render_examples
from vllm_sim import (
    AnswerProfile,
    Verdict,
    compose_reply,
    make_profile,
    match_profile,
    normalise_source,
    parse_answers,
    profile_verdict,
    template_fragments,
)

DATASET = REPO / "data" / "synthetic-vultrial.jsonl"
ZERO_PATH, FEW_PATH = PROMPTS / "zero-shot.txt", PROMPTS / "few-shot.txt"
SEED = 1234
SEEDS = range(50)  # 48 samples x 50 seeds = 2400 independent draws (the seed is part of every hash)


def samples() -> list[Sample]:
    dataset = load_dataset(DATASET, None)
    assert len(dataset.samples) == 48
    return dataset.samples


def builders() -> tuple[PromptBuilder, PromptBuilder]:
    """Zero-shot and few-shot prompts rendered exactly as harness.run builds them."""
    zero = PromptBuilder(load_template(ZERO_PATH, few_shot=False), "")
    examples = render_examples(load_examples(PROMPTS / "few-shot-examples.jsonl"))
    few = PromptBuilder(load_template(FEW_PATH, few_shot=True), examples)
    return zero, few


def profile(path: Path, accuracy: float, yes_bias: float = 0.5, unparseable: float = 0.0) -> AnswerProfile:
    return make_profile(path.read_text(encoding="utf-8"), accuracy, yes_bias, unparseable, str(path))


def verdicts(prof: AnswerProfile, rows: list[tuple[str, int]], seed: Any, shared: float = 0.7,
             model: str = SERVED_NAME) -> list[Verdict]:
    return [profile_verdict(prof, label, normalise_source(func), model, seed, shared) for func, label in rows]


def labelled() -> list[tuple[str, int]]:
    return [(s.func, s.label) for s in samples()]


def sd_band(n: int, p: float, k: float = 4.0) -> float:
    return k * math.sqrt(n * p * (1 - p))


# ---------------------------------------------------------------- today's answers without a profile


def test_default_answers_are_unchanged() -> None:
    """Digest of compose_reply's output recorded before answer profiles existed: no verdict, same bytes."""
    h = hashlib.sha256()
    rows = [json.loads(line) for line in DATASET.read_text().splitlines()]
    for i, row in enumerate(rows):
        for seed in (None, 0, 1234):
            for thinking in (False, True):
                user = f"Review:\n```c\n{row['func']}\n```\nok {i}"
                r = compose_reply(user, user + "x", seed, thinking)
                h.update(repr((r.reasoning, r.answer)).encode())
    for i in range(400):
        user = f"```c\nint f{i}(char *d, char *s) {{ strcpy(d, s); return {i}; }}\n```"
        r = compose_reply(user, f"prompt {i}", i, i % 2 == 0)
        h.update(repr((r.reasoning, r.answer)).encode())
    assert h.hexdigest() == "1707e8bf041d713c5b0d3d0b767026902e6fd9fc9d11468e9e24a3be81182aa1"


# ---------------------------------------------------------------- template matching


def test_template_matching_picks_the_strategy_of_real_prompts() -> None:
    zero, few = builders()
    zp, fp = profile(ZERO_PATH, 0.8), profile(FEW_PATH, 0.6)
    assert len(zp.fragments) == 2 and len(fp.fragments) == 3  # split on {func} (and {examples})
    for sample in samples():
        for order in ([zp, fp], [fp, zp]):
            assert match_profile(order, zero.render(sample.func)) is zp
            assert match_profile(order, few.render(sample.func)) is fp
    # A prompt of neither strategy matches none; so does a template's text with its fragments out of order.
    assert match_profile([zp, fp], f"Is this vulnerable?\n```c\n{samples()[0].func}\n```") is None
    first, last = zp.fragments
    assert match_profile([zp], f"{last}\n{first}") is None
    assert match_profile([zp], f"{first}\nint f(void);\n{last}") is zp


def test_template_fragments_split_on_any_placeholder_and_most_characters_win() -> None:
    assert template_fragments("  A {func} B\n{examples}\n\n{word}C ") == ("A", "B", "C")
    assert template_fragments("{func}") == ()
    short, long = make_profile("Review:\n{func}", 1.0), make_profile("Review:\n{func}\nBe brief.", 0.0)
    assert match_profile([short, long], "Review:\nint f(void);\nBe brief.") is long
    assert match_profile([short, long], "Review:\nint f(void);") is short


# ---------------------------------------------------------------- accuracy, yesBias, unparseable


@pytest.mark.parametrize(("accuracy", "yes_bias"), [(0.8, 0.5), (0.7, 0.8), (0.6, 0.2)])
def test_accuracy_and_yes_bias_are_realised(accuracy: float, yes_bias: float) -> None:
    rows = labelled()
    benign, vulnerable = sum(1 for _, y in rows if y == 0), sum(1 for _, y in rows if y == 1)
    assert benign == vulnerable == 24  # balanced, so accuracy is the mean of the two per-label rates
    prof = profile(ZERO_PATH, accuracy, yes_bias)
    p_false_yes = 2 * (1 - accuracy) * yes_bias  # P(wrong | benign)
    p_false_no = 2 * (1 - accuracy) * (1 - yes_bias)  # P(wrong | vulnerable)

    # One run (48 samples, one seed): within 4 binomial sd of the expected number correct (sd ~ 2.8-3.4 samples).
    one = verdicts(prof, rows, SEED)
    correct = sum(v.vulnerable == (y == 1) for v, (_, y) in zip(one, rows, strict=True))
    assert abs(correct - 48 * accuracy) <= sd_band(48, accuracy)
    assert one == verdicts(prof, rows, SEED)  # exactly reproducible

    # 50 seeds (2400 draws): accuracy within 4 sd (<= 0.04); false-YES / false-NO rates per label within 4 sd of
    # 1200 draws (<= 0.058), which a swapped yesBias (0.48 vs 0.12 at 0.7/0.8) could never meet.
    false_yes = false_no = right = 0
    for seed in SEEDS:
        for v, (_, y) in zip(verdicts(prof, rows, seed), rows, strict=True):
            right += v.vulnerable == (y == 1)
            false_yes += y == 0 and v.vulnerable
            false_no += y == 1 and not v.vulnerable
    n = 48 * len(SEEDS)
    assert abs(right - n * accuracy) <= sd_band(n, accuracy)
    assert abs(false_yes - n / 2 * p_false_yes) <= sd_band(n // 2, p_false_yes)
    assert abs(false_no - n / 2 * p_false_no) <= sd_band(n // 2, p_false_no)


def test_extreme_profiles_are_exact() -> None:
    rows = labelled()
    truth = [y == 1 for _, y in rows]
    for seed in (None, 0, SEED):
        assert [v.vulnerable for v in verdicts(profile(ZERO_PATH, 1.0), rows, seed)] == truth
        assert [v.vulnerable for v in verdicts(profile(ZERO_PATH, 0.0), rows, seed)] == [not t for t in truth]
        # accuracy 0 with all errors false YES: P(wrong | benign) = 2 capped at 1, P(wrong | vulnerable) = 0
        assert all(v.vulnerable for v in verdicts(profile(ZERO_PATH, 0.0, yes_bias=1.0), rows, seed))
        assert not any(v.vulnerable for v in verdicts(profile(ZERO_PATH, 0.0, yes_bias=0.0), rows, seed))


def test_results_are_the_same_in_another_process() -> None:
    """sha256, not Python's salted hash(): another interpreter with another PYTHONHASHSEED draws the same."""
    script = (
        "import sys; sys.path[:0] = [sys.argv[1], sys.argv[2]]\n"
        "from harness.dataset import load_dataset\n"
        "from vllm_sim import make_profile, normalise_source, profile_verdict\n"
        "p = make_profile(open(sys.argv[3]).read(), 0.7, 0.6, 0.1)\n"
        "print(''.join('%d%d' % (v.vulnerable, v.rambling) for v in (profile_verdict(p, s.label, "
        "normalise_source(s.func), 'sim/m', 7, 0.7) for s in load_dataset(__import__('pathlib').Path(sys.argv[4]), "
        "None).samples)))\n"
    )
    out = subprocess.run([sys.executable, "-c", script, str(REPO / "pod"), str(VLLM_BIN.parent.parent),
                          str(ZERO_PATH), str(DATASET)], env={**child_env(), "PYTHONHASHSEED": "12345"},
                         capture_output=True, text=True, timeout=30, check=True).stdout.strip()
    here = "".join(f"{v.vulnerable:d}{v.rambling:d}"
                   for v in verdicts(profile(ZERO_PATH, 0.7, 0.6, 0.1), labelled(), 7, model="sim/m"))
    assert out == here


def test_unparseable_share() -> None:
    rows = labelled()
    n = 48 * len(SEEDS)
    for share in (0.0, 0.25, 1.0):
        prof = profile(FEW_PATH, 0.8, unparseable=share)
        rambling = sum(v.rambling for seed in SEEDS for v in verdicts(prof, rows, seed))
        assert abs(rambling - n * share) <= sd_band(n, share)  # 4 sd of 2400 draws (<= 85); exact at 0 and 1
    # The draw is per strategy: the same share on the two templates rambles on different samples.
    zero_r = [v.rambling for seed in SEEDS for v in verdicts(profile(ZERO_PATH, 0.8, unparseable=0.25), rows, seed)]
    few_r = [v.rambling for seed in SEEDS for v in verdicts(profile(FEW_PATH, 0.8, unparseable=0.25), rows, seed)]
    assert zero_r != few_r
    reply = compose_reply("```c\nint f(void) { return 0; }\n```", "p", SEED, False, Verdict(True, rambling=True))
    assert "FINAL ANSWER" not in reply.answer and reply.answer.startswith("Let me consider `f` step by step.")


# ---------------------------------------------------------------- pairing through the shared latent


def synthetic_rows(n: int) -> list[tuple[str, int]]:
    return [(f"int f{i}(char *d, const char *s) {{ return copy_{i}(d, s, {i % 7}); }}", i % 2) for i in range(n)]


def test_shared_latent_makes_paired_strategies_agree() -> None:
    """Equal accuracy 0.75 on both templates: only the 1 - sharedLatent of samples with their own latents can differ,
    P(discordant) = 0.3 * 2 * 0.75 * 0.25 = 0.1125, against 0.375 for independent runs."""
    n, accuracy = 4000, 0.75
    rows = synthetic_rows(n)
    zp, fp = profile(ZERO_PATH, accuracy), profile(FEW_PATH, accuracy)

    def discordant(shared: float) -> tuple[int, int, int]:
        z, f = verdicts(zp, rows, SEED, shared), verdicts(fp, rows, SEED, shared)
        right_z = sum(v.vulnerable == (y == 1) for v, (_, y) in zip(z, rows, strict=True))
        right_f = sum(v.vulnerable == (y == 1) for v, (_, y) in zip(f, rows, strict=True))
        return sum(a.vulnerable != b.vulnerable for a, b in zip(z, f, strict=True)), right_z, right_f

    independent = 2 * accuracy * (1 - accuracy)
    paired, right_z, right_f = discordant(0.7)
    assert abs(paired - n * 0.3 * independent) <= sd_band(n, 0.3 * independent)  # 450 +- 80
    assert paired < 0.5 * n * independent  # well below independence (1500)
    for right in (right_z, right_f):  # each strategy's own accuracy is untouched by the pairing
        assert abs(right - n * accuracy) <= sd_band(n, accuracy)
    unpaired, _, _ = discordant(0.0)
    assert abs(unpaired - n * independent) <= sd_band(n, independent)  # 1500 +- 122
    assert discordant(1.0)[0] == 0
    # On the 48 real samples the same holds, more noisily: expected 5.4 discordant, 18 if independent.
    real = labelled()
    z, f = verdicts(zp, real, SEED), verdicts(fp, real, SEED)
    assert sum(a.vulnerable != b.vulnerable for a, b in zip(z, f, strict=True)) <= 0.5 * 48 * independent


def test_reply_wording_follows_the_verdict() -> None:
    unsafe = "```c\nint g(char *d, const char *s) {\n  strcpy(d, s);\n  return 0;\n}\n```"
    safe = "```c\nint h(void) {\n  return 0;\n}\n```"
    for user in (unsafe, safe):
        for vulnerable in (True, False):
            reply = compose_reply(user, user, SEED, True, Verdict(vulnerable, rambling=False))
            assert reply.answer.endswith(f"FINAL ANSWER: {'YES' if vulnerable else 'NO'}")
            assert reply.reasoning is not None
            assert reply.reasoning.endswith(f"looks {'vulnerable' if vulnerable else 'safe'} to me.")
            assert ("guarded" in reply.reasoning) == (not vulnerable and user == safe)


# ---------------------------------------------------------------- the served simulator


def answers_env(tmp_path: Path, profiles: list[dict[str, Any]], **extra: Any) -> dict[str, str]:
    value = {"datasetPath": str(DATASET), "profiles": profiles, **extra}
    return {"VLLM_SIM_ANSWERS": json.dumps(value), "VLLM_SIM_TOKENS_PER_S": "100000"}


def ask(sim: Sim, content: str, seed: Any = SEED, name: str = SERVED_NAME) -> dict[str, Any]:
    body = {"model": name, "messages": [{"role": "user", "content": content}], "temperature": 0.7, "top_p": 0.8,
            "top_k": 20, "min_p": 0, "max_tokens": 512, "seed": seed}
    return sim.post("/v1/chat/completions", body)["choices"][0]["message"]


def final(message: dict[str, Any]) -> str | None:
    content = message["content"] or ""
    for verdict in ("YES", "NO"):
        if content.endswith(f"FINAL ANSWER: {verdict}"):
            return verdict
    return None


def test_served_verdicts_follow_the_profiles(start_sim: Callable[..., Sim], tmp_path: Path) -> None:
    zero, few = builders()
    sim = start_sim(env=answers_env(tmp_path, [
        {"templatePath": str(ZERO_PATH), "accuracy": 1.0},
        {"templatePath": str(FEW_PATH), "accuracy": 0.0, "yesBias": 0.5, "unparseable": 0.0},
    ], sharedLatent=0.7))
    for sample in samples():
        truth = "YES" if sample.label == 1 else "NO"
        assert final(ask(sim, zero.render(sample.func))) == truth
        assert final(ask(sim, few.render(sample.func))) == ("NO" if truth == "YES" else "YES")
    log = sim.log()
    assert "VLLM_SIM_ANSWERS: 2 answer profile(s)" in log and "48 labelled functions" in log
    assert "WARNING" not in log

    # Not an evaluation (the orchestrator's warm-up): default answer, no warning.
    ask(sim, "Say OK.")
    assert "WARNING" not in sim.log()
    # A function not in the dataset, and a prompt of no strategy: today's answer; warnings counted, not per request.
    for i in range(3):
        content = zero.render(f"int unknown_{i}(void) {{ return {i}; }}")
        assert ask(sim, content)["content"] == compose_reply(content, content, SEED, False).answer
    other = f"Is this vulnerable?\n```c\n{samples()[0].func}\n```"
    for _ in range(2):
        assert ask(sim, other)["content"] == compose_reply(other, other, SEED, False).answer
    log = sim.log()
    assert "1 request(s) so far evaluated a function not in" in log and "2 request(s) so far" in log
    assert "3 request(s) so far" not in log
    assert log.count("matches none of the 2 profile template(s)") == 1


def test_served_draws_match_the_pure_functions(start_sim: Callable[..., Sim], tmp_path: Path) -> None:
    """The server keys its draws on the served model name and the request seed, as profile_verdict does, so the
    sandbox's paired runs are the ones the unit tests above measure."""
    zero, few = builders()
    spec = {"accuracy": 0.75, "yesBias": 0.6, "unparseable": 0.1}
    name = "sim/Qwen3-30B-A3B-Thinking-2507"
    sim = start_sim(name=name, args=["--reasoning-parser", "deepseek_r1"], env=answers_env(tmp_path, [
        {"templatePath": str(ZERO_PATH), **spec}, {"templatePath": str(FEW_PATH), **spec}]))
    zp, fp = profile(ZERO_PATH, 0.75, 0.6, 0.1), profile(FEW_PATH, 0.75, 0.6, 0.1)
    for seed in (SEED, None):
        for builder, prof in ((zero, zp), (few, fp)):
            for sample, expected in zip(samples(), verdicts(prof, labelled(), seed, model=name), strict=True):
                message = ask(sim, builder.render(sample.func), seed=seed, name=name)
                assert final(message) == (None if expected.rambling else "YES" if expected.vulnerable else "NO")
                looks = "vulnerable" if expected.vulnerable else "safe"
                assert message["reasoning"].endswith(f"looks {looks} to me.")


def test_empty_variable_changes_nothing(start_sim: Callable[..., Sim]) -> None:
    sim = start_sim(env={"VLLM_SIM_ANSWERS": ""})
    zero, _ = builders()
    content = zero.render(samples()[3].func)
    assert ask(sim, content)["content"] == compose_reply(content, content, SEED, False).answer
    assert "VLLM_SIM_ANSWERS" not in sim.log()


def test_parse_answers_defaults() -> None:
    answers = parse_answers(json.dumps({"datasetPath": str(DATASET),
                                        "profiles": [{"templatePath": str(ZERO_PATH), "accuracy": 0.9}]}))
    assert answers.shared_latent == 0.7 and len(answers.labels) == 48 and answers.conflicts == 0
    (only,) = answers.profiles
    assert (only.accuracy, only.yes_bias, only.unparseable) == (0.9, 0.5, 0.0)


@pytest.mark.parametrize(("value", "message"), [
    ("{not json", "invalid JSON"),
    ('["a list"]', "the value must be a JSON object"),
    (json.dumps({"datasetPath": "/nonexistent/dataset.jsonl", "profiles": []}), "cannot read datasetPath"),
    (json.dumps({"datasetPath": str(DATASET), "profiles": [{"templatePath": str(ZERO_PATH), "accuracy": 1.5}]}),
     "`accuracy` must be a number from 0 to 1, got 1.5"),
    (json.dumps({"datasetPath": str(DATASET), "profiles": [{"templatePath": str(ZERO_PATH)}]}),
     "`accuracy` is required"),
    (json.dumps({"datasetPath": str(DATASET),
                 "profiles": [{"templatePath": str(ZERO_PATH), "accuracy": 0.5, "yesBias": -0.1}]}),
     "`yesBias` must be a number from 0 to 1"),
    (json.dumps({"datasetPath": str(DATASET), "profiles": [], "sharedLatent": "0.7"}),
     "`sharedLatent` must be a number from 0 to 1"),
    (json.dumps({"datasetPath": str(DATASET), "profiles": [{"templatePath": "/nonexistent/t.txt", "accuracy": 1}]}),
     "cannot read profiles[0].templatePath"),
    (json.dumps({"datasetPath": str(DATASET), "profiles": [{"templatePath": str(ZERO_PATH), "acuracy": 1}]}),
     "unknown key(s) ['acuracy']"),
])
def test_bad_answers_fail_at_startup_with_exit_2(model_dir: Path, value: str, message: str) -> None:
    result = subprocess.run([str(VLLM_BIN), "serve", str(model_dir), "--port", str(free_port())],
                            env=child_env({"VLLM_SIM_ANSWERS": value}), capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert result.stderr.startswith("vllm-sim: VLLM_SIM_ANSWERS: ") and message in result.stderr
    assert "Starting vLLM API server" not in result.stdout
