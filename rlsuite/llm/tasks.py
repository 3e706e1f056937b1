"""Synthetic verifiable tasks and a character-level tokenizer for tiny language models.

Everything is generated in code (no downloads) and checked exactly by a verifier:

========================  ==============================  =========================================
task                      prompt -> answer                 notes
========================  ==============================  =========================================
``addition``              ``57+68=`` -> ``521``            sum with digits reversed (least significant first)
``sorting``               ``3141=`` -> ``1134``            4-6 digits, ascending
``countdown``             ``3,5,2|6=`` -> ``3+5-2``        any +/- expression using each number once
``scratchpad``            ``57+68=`` -> ``51,21|521``      per position "digit carry" steps, then the answer
``tool``                  ``57+68=`` -> ``C521``           ``C`` calls a calculator; the env inserts ``521``
``filler``                ``57+68=`` -> ``__521``          0-8 ``_`` before the answer (length can vary freely)
========================  ==============================  =========================================
"""

from __future__ import annotations

import dataclasses
import random
import re
import zlib
from collections.abc import Callable, Sequence

import torch

SPECIALS = ("<pad>", "<bos>", "<eos>")
CHARS = "0123456789+-=,|_C"


class CharTokenizer:
    """One token per character of :data:`CHARS`, plus ``<pad>`` (0), ``<bos>`` (1) and ``<eos>`` (2)."""

    def __init__(self, chars: str = CHARS) -> None:
        self.itos = list(SPECIALS) + list(chars)
        self.stoi = {c: i for i, c in enumerate(self.itos)}
        self.pad_id, self.bos_id, self.eos_id = 0, 1, 2

    @property
    def vocab_size(self) -> int:
        return len(self.itos)

    def encode(self, text: str, bos: bool = False, eos: bool = False) -> list[int]:
        """Token ids of ``text``; an unknown character raises with the allowed set."""
        try:
            ids = [self.stoi[c] for c in text]
        except KeyError as e:
            raise ValueError(f"character {e.args[0]!r} is not in the vocabulary {''.join(self.itos[3:])!r}.") from None
        return ([self.bos_id] if bos else []) + ids + ([self.eos_id] if eos else [])

    def decode(self, ids: Sequence[int]) -> str:
        """Text of ``ids``, stopping at the first ``<eos>`` and skipping ``<pad>``/``<bos>``."""
        out = []
        for i in ids:
            i = int(i)
            if i == self.eos_id:
                break
            if i in (self.pad_id, self.bos_id):
                continue
            out.append(self.itos[i])
        return "".join(out)

    def _pad(self, seqs: list[list[int]], left: bool) -> tuple[torch.Tensor, torch.Tensor]:
        n = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), n), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), n), dtype=torch.long)
        for i, s in enumerate(seqs):
            cols = slice(n - len(s), n) if left else slice(0, len(s))
            ids[i, cols] = torch.tensor(s, dtype=torch.long)
            mask[i, cols] = 1
        return ids, mask

    def batch_encode(self, texts: Sequence[str], bos: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """Left-padded ``(input_ids, attention_mask)``, both ``(B, L)`` (left padding suits generation)."""
        return self._pad([self.encode(t, bos=bos) for t in texts], left=True)

    def batch_encode_completions(self, texts: Sequence[str], eos: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """Right-padded ``(ids, mask)``, both ``(B, C)``, of completions (each followed by ``<eos>``)."""
        return self._pad([self.encode(t, eos=eos) for t in texts], left=False)


@dataclasses.dataclass(frozen=True)
class Example:
    """One task instance: the prompt, a reference answer (for SFT) and the task name."""

    task: str
    prompt: str
    answer: str


def _rev_sum(a: int, b: int) -> str:
    return str(a + b)[::-1]


def _operands(prompt: str) -> tuple[int, int]:
    m = re.fullmatch(r"(\d+)\+(\d+)=", prompt)
    if not m:
        raise ValueError(f"not an addition prompt: {prompt!r}")
    return int(m.group(1)), int(m.group(2))


def scratchpad_steps(a: int, b: int) -> list[str]:
    """Per-position steps ``"<digit><carry>"`` of ``a + b``, least significant position first."""
    da, db = str(a)[::-1], str(b)[::-1]
    steps, carry = [], 0
    for i in range(max(len(da), len(db))):
        s = (int(da[i]) if i < len(da) else 0) + (int(db[i]) if i < len(db) else 0) + carry
        carry = s // 10
        steps.append(f"{s % 10}{carry}")
    return steps


def sample(task: str, rng: random.Random, digits: int = 2) -> Example:
    """Draw one example of ``task`` with ``rng``."""
    if task in ("addition", "scratchpad", "tool", "filler"):
        a, b = rng.randrange(10**digits), rng.randrange(10**digits)
        prompt = f"{a}+{b}="
        answer = {
            "addition": _rev_sum(a, b),
            "scratchpad": ",".join(scratchpad_steps(a, b)) + "|" + _rev_sum(a, b),
            "tool": "C" + _rev_sum(a, b),
            "filler": "_" * rng.randrange(9) + _rev_sum(a, b),
        }[task]
        return Example(task, prompt, answer)
    if task == "sorting":
        s = "".join(rng.choice("0123456789") for _ in range(rng.randint(4, 6)))
        return Example(task, f"{s}=", "".join(sorted(s)))
    if task == "countdown":
        n = [rng.randint(1, 9) for _ in range(3)]
        signs = [rng.choice("+-") for _ in range(2)]
        expr = f"{n[0]}{signs[0]}{n[1]}{signs[1]}{n[2]}"
        return Example(task, f"{n[0]},{n[1]},{n[2]}|{_eval_pm(expr)}=", expr)
    raise ValueError(f"unknown task {task!r}; allowed: {', '.join(TASKS)}.")


def _eval_pm(expr: str) -> int:
    """Evaluate a ``+``/``-`` expression of non-negative integers (never ``eval``)."""
    if not re.fullmatch(r"\d+([+-]\d+)*", expr):
        raise ValueError(f"not a +/- expression: {expr!r}")
    return sum(int(t) for t in re.findall(r"[+-]?\d+", expr))


def tool_result(prompt: str) -> str:
    """What the calculator tool inserts after ``C`` for an addition prompt (the reversed sum)."""
    return _rev_sum(*_operands(prompt))


def verify(task: str, prompt: str, completion: str) -> float:
    """1.0 when ``completion`` solves ``prompt`` exactly, else 0.0."""
    try:
        if task == "addition":
            return float(completion == _rev_sum(*_operands(prompt)))
        if task == "scratchpad":
            a, b = _operands(prompt)
            return float(completion == ",".join(scratchpad_steps(a, b)) + "|" + _rev_sum(a, b))
        if task == "tool":
            return float(completion.endswith(tool_result(prompt)) and completion.replace(tool_result(prompt), "", 1) in ("", "C"))
        if task == "filler":
            return float(completion.lstrip("_") == _rev_sum(*_operands(prompt)))
        if task == "sorting":
            return float(completion == "".join(sorted(prompt[:-1])))
        if task == "countdown":
            nums, target = prompt[:-1].split("|")
            used = sorted(re.findall(r"\d+", completion))
            return float(used == sorted(nums.split(",")) and _eval_pm(completion) == int(target))
    except ValueError:
        return 0.0
    raise ValueError(f"unknown task {task!r}; allowed: {', '.join(TASKS)}.")


def step_correctness(prompt: str, completion: str) -> list[bool]:
    """For ``scratchpad``: whether each step of ``completion`` matches the true step (missing ones are wrong)."""
    a, b = _operands(prompt)
    truth = scratchpad_steps(a, b)
    given = completion.split("|")[0].split(",") if completion else []
    return [i < len(given) and given[i] == t for i, t in enumerate(truth)]


def is_held_out(prompt: str, fraction: float = 0.1) -> bool:
    """A fixed, seed-independent split: a prompt is held out when its CRC32 falls in the first ``fraction``."""
    return zlib.crc32(prompt.encode()) % 1000 < int(fraction * 1000)


def make_split(task: str, n: int, seed: int, held_out: bool, fraction: float = 0.1, digits: int = 2) -> list[Example]:
    """``n`` examples from the training (``held_out=False``) or held-out side of the fixed split."""
    rng = random.Random(seed)
    out: list[Example] = []
    for _ in range(200 * n + 1000):
        ex = sample(task, rng, digits)
        if is_held_out(ex.prompt, fraction) == held_out:
            out.append(ex)
            if len(out) == n:
                return out
    raise ValueError(f"could not draw {n} {'held-out' if held_out else 'training'} examples of {task!r}; lower n or raise fraction.")


def preference_pairs(
    prompts: Sequence[str], completions: Sequence[Sequence[str]], reward: Callable[[str, str], float]
) -> list[tuple[str, str, str]]:
    """Label sampled completions with a verifier: for each prompt, pair each correct completion with a
    wrong one (in order) -> ``(prompt, chosen, rejected)``; prompts with no correct or no wrong sample
    give no pair."""
    pairs = []
    for p, group in zip(prompts, completions, strict=True):
        good = [c for c in group if reward(p, c) > 0]
        bad = [c for c in group if reward(p, c) <= 0]
        pairs += [(p, g, b) for g, b in zip(good, bad, strict=False)]
    return pairs


TASKS = ("addition", "sorting", "countdown", "scratchpad", "tool", "filler")
