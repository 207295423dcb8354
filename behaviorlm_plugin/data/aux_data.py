"""Auxiliary general conversations for A-Tuning (the paper's multi-task trick).

The paper mixes daily user-ChatGPT conversations into A-Tuning at ratio λ of the
anchor set size (5% works best) after dropping conversations much longer than the
behavior prompts.  This module loads such data (ShareGPT or alpaca, JSON or JSONL),
normalises it to ShareGPT ``conversations``, filters by a token budget and builds the
mix as one concrete dataset, so the ratio is exact rather than a sampling weight.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from importlib import resources
from pathlib import Path

import numpy as np

from behaviorlm_plugin.data.registry import check_registration, make_entry, register_datasets
from behaviorlm_plugin.extras.constants import STATS_FILE, check_dataset_name
from behaviorlm_plugin.extras.fileio import atomic_write_jsonl, read_jsonl

DEFAULT_AUX_RESOURCE = "aux_conversations.jsonl"
_ROLE_ALIASES = {"human": "human", "user": "human", "gpt": "gpt", "assistant": "gpt", "system": "system"}


class AuxDataError(ValueError):
    """Bad auxiliary conversation data; the message names the file, the record and the fix."""


def default_aux_path() -> Path:
    return Path(str(resources.files("behaviorlm_plugin").joinpath("resources", DEFAULT_AUX_RESOURCE)))


def load_conversations(path: str | Path | None = None) -> list[dict]:
    """Load ShareGPT or alpaca records as ``{"conversations": [...], "system": str}``.

    ShareGPT: ``conversations`` or ``messages`` lists with ``from``/``value`` or
    ``role``/``content`` keys.  Alpaca: ``instruction`` [+ ``input``] -> ``output``.
    """
    path = Path(path) if path is not None else default_aux_path()
    if not path.exists():
        raise AuxDataError(f"{path}: auxiliary conversation file not found")
    if path.suffix.lower() == ".jsonl":
        try:
            records = read_jsonl(path)
        except ValueError as err:
            raise AuxDataError(str(err)) from err
    else:
        try:
            records = json.loads(path.read_text("utf-8"))
        except json.JSONDecodeError as err:
            raise AuxDataError(f"{path}: line {err.lineno} is not valid JSON ({err.msg})") from err
        if not isinstance(records, list):
            raise AuxDataError(f"{path}: expected a JSON list of records (or use .jsonl)")
    return [_normalise(rec, path, i) for i, rec in enumerate(records)]


def _normalise(rec: dict, path: Path, i: int) -> dict:
    where = f"{path}: record {i}"
    if not isinstance(rec, dict):
        raise AuxDataError(f"{where} is not a JSON object")
    msgs = rec.get("conversations", rec.get("messages"))
    if msgs is not None:
        turns, system = [], str(rec.get("system", "") or "")
        for j, m in enumerate(msgs):
            role = m.get("from", m.get("role")) if isinstance(m, dict) else None
            text = m.get("value", m.get("content")) if isinstance(m, dict) else None
            if role not in _ROLE_ALIASES or not isinstance(text, str):
                raise AuxDataError(
                    f"{where} turn {j}: needs from/value (or role/content) with role in {sorted(_ROLE_ALIASES)}"
                )
            if _ROLE_ALIASES[role] == "system":
                system = text
                continue
            turns.append({"from": _ROLE_ALIASES[role], "value": text})
        _check_turns(turns, where)
        return {"conversations": turns, "system": system}
    if "instruction" in rec and "output" in rec:
        prompt = str(rec["instruction"]) + (f"\n{rec['input']}" if rec.get("input") else "")
        turns = [{"from": "human", "value": prompt}, {"from": "gpt", "value": str(rec["output"])}]
        _check_turns(turns, where)
        return {"conversations": turns, "system": str(rec.get("system", "") or "")}
    raise AuxDataError(
        f"{where}: neither ShareGPT (conversations/messages) nor alpaca (instruction/output); found keys {sorted(rec)}"
    )


def _check_turns(turns: list[dict], where: str) -> None:
    if not turns or len(turns) % 2:
        raise AuxDataError(f"{where}: needs alternating human/gpt turns ending with gpt, got {len(turns)} turn(s)")
    for j, t in enumerate(turns):
        want = "human" if j % 2 == 0 else "gpt"
        if t["from"] != want:
            raise AuxDataError(f"{where} turn {j}: expected a {want!r} turn, got {t['from']!r}")
        if not t["value"].strip():
            raise AuxDataError(f"{where} turn {j}: empty text")


_WORDPIECE = re.compile(r"\w+|[^\w\s]")


def approx_token_count(text: str) -> int:
    """Tokenizer-free estimate (~1.3 tokens per word or punctuation mark for BPE models)."""
    return math.ceil(1.3 * len(_WORDPIECE.findall(text)))


def tokenizer_counter(tokenizer) -> Callable[[str], int]:
    """Exact token count with an HF tokenizer (no special tokens), for filters and length stats."""
    return lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])


def conversation_tokens(conv: dict, count: Callable[[str], int]) -> int:
    return count(conv.get("system", "")) + sum(count(t["value"]) for t in conv["conversations"])


def filter_by_tokens(
    convs: list[dict], max_tokens: int, count: Callable[[str], int] = approx_token_count
) -> tuple[list[dict], int]:
    """Drop conversations longer than ``max_tokens``; returns (kept, dropped count)."""
    if max_tokens <= 0:
        raise ValueError(f"max_tokens must be > 0, got {max_tokens}")
    kept = [c for c in convs if conversation_tokens(c, count) <= max_tokens]
    return kept, len(convs) - len(kept)


def aux_count(n_anchor: int, ratio: float) -> int:
    """Number of aux conversations for ratio λ of the anchor set (rounded half up)."""
    if not 0 <= ratio <= 10:
        raise ValueError(f"aux ratio λ must be in [0, 10], got {ratio}")
    return math.floor(ratio * n_anchor + 0.5)


def pick_aux(convs: list[dict], n: int, rng: np.random.Generator) -> tuple[list[dict], int]:
    """``n`` conversations, without replacement while possible.

    When the pool is smaller than ``n`` the pool is repeated (each pass in a new
    random order) so the ratio stays exact; the number of full repeats is returned
    so it can be reported.
    """
    if n == 0:
        return [], 0
    if not convs:
        raise AuxDataError("no auxiliary conversations left after filtering; raise the token budget or add data")
    picked: list[dict] = []
    passes = 0
    while len(picked) < n:
        order = rng.permutation(len(convs))
        picked.extend(convs[i] for i in order[: n - len(picked)])
        passes += 1
    return picked, passes - 1


def behavior_to_sharegpt(system: str, prompt: str, answer: str) -> dict:
    """One behavior sample in the same ShareGPT layout as the aux conversations."""
    return {"conversations": [{"from": "human", "value": prompt}, {"from": "gpt", "value": answer}], "system": system}


def build_atuning_mix(
    anchor_records: list[dict], aux_pool: list[dict], *, aux_ratio: float, anchors: int | None, seed: int
) -> tuple[list[dict], dict]:
    """The A-Tuning data: ``anchors`` seeded anchor samples (all when None) plus exactly
    ``round(λ·n)`` general conversations, shuffled.  ``prepare`` and the bench both build it here.

    Each draw has its own stream of ``seed``, so changing λ never changes which anchors are used.
    """

    def rng(stream: int) -> np.random.Generator:
        return np.random.default_rng([seed, stream])

    recs = anchor_records
    if anchors is not None and anchors < len(recs):
        keep = np.sort(rng(7).choice(len(recs), size=anchors, replace=False))
        recs = [recs[i] for i in keep]
    aux_used, repeats = pick_aux(aux_pool, aux_count(len(recs), aux_ratio), rng(5))
    mix = [behavior_to_sharegpt(r["system"], r["instruction"], r["output"]) for r in recs] + aux_used
    mix = [mix[i] for i in rng(6).permutation(len(mix))]
    return mix, {"n": len(mix), "anchors": len(recs), "aux": len(aux_used), "aux_pool_repeats": repeats}


def register_aux(args) -> dict:
    """``behaviorlm register-aux``: filter a conversation file by tokens, write it, register it."""

    check_dataset_name(args.name)
    folder = Path(args.dataset_dir) / args.name
    if (folder / STATS_FILE).exists() or folder.is_symlink():
        raise AuxDataError(f"{folder}: is a prepared behavior dataset; register the conversations under another --name")
    convs = load_conversations(args.file)
    count = approx_token_count
    if args.tokenizer:
        from transformers import AutoTokenizer

        count = tokenizer_counter(AutoTokenizer.from_pretrained(args.tokenizer))
    kept, dropped = filter_by_tokens(convs, args.max_tokens, count)
    if not kept:
        raise AuxDataError(
            f"{args.file}: no conversation left ({len(convs)} loaded, {dropped} over --max-tokens {args.max_tokens})"
        )
    rel = f"{args.name}/aux.jsonl"
    target = Path(args.dataset_dir) / rel
    if target.exists() and not args.overwrite:
        raise AuxDataError(f"{target}: already holds conversations; pass --overwrite to replace them")
    entries = {args.name: make_entry(rel, "sharegpt")}
    check_registration(args.dataset_dir, entries, overwrite=args.overwrite)
    atomic_write_jsonl(Path(args.dataset_dir) / rel, kept)
    register_datasets(dataset_dir=args.dataset_dir, entries=entries, overwrite=args.overwrite)
    return {"registered": args.name, "kept": len(kept), "dropped_over_budget": dropped}
