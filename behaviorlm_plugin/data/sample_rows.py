"""Each output split's samples as dicts (records, metas) and as the JSONL lines ``prepare`` writes.

The lines are built from pieces encoded once (the system prompt, labels, categories, the format names)
around the per-sample strings, which is what ``json.dumps(row, ensure_ascii=False)`` of the dicts gives,
byte for byte, at a fraction of the cost (``tests/data/test_shipped_data.py`` pins the files).
"""

from __future__ import annotations

import json
from json.encoder import encode_basestring
from typing import NamedTuple

import numpy as np
import pandas as pd

from behaviorlm_plugin.data.prompts import PromptOptions, load_prompt_format_file, render_prompts, system_prompt
from behaviorlm_plugin.data.samples import EncodedEvents, history_indices
from behaviorlm_plugin.data.windows import Windows, split_rng
from behaviorlm_plugin.extras.constants import FEATURE_SPLITS
from behaviorlm_plugin.hparams.data_args import PrepareArguments

ENCODE = json.JSONEncoder(ensure_ascii=False).encode  # what json.dumps(value, ensure_ascii=False) writes
ENCODE_STR = encode_basestring  # the same for a str, without the encoder's per-call checks


class SplitRows(NamedTuple):
    """One split's samples: alpaca records, meta rows, and each one's JSONL line (aligned)."""

    records: list[dict]
    metas: list[dict]
    record_lines: list[str]
    meta_lines: list[str]


def timestamp_texts(timestamps: np.ndarray) -> list[str]:
    """``str(pd.Timestamp(t))`` of each datetime64[ns]; whole seconds formatted in one numpy call."""
    ns = np.asarray(timestamps).astype("datetime64[ns]")
    whole = (ns.view(np.int64) % 10**9 == 0).all() if len(ns) else True
    if not whole:
        return [str(pd.Timestamp(t)) for t in ns]
    return [s[:10] + " " + s[11:] for s in np.datetime_as_string(ns.astype("datetime64[s]")).tolist()]


def _candidate_lists(cands: list[list[str]], behaviors: tuple[str, ...]) -> list[str]:
    """The JSON of each candidate list; labels that need no escaping are quoted and joined directly."""
    if all(ENCODE(b) == f'"{b}"' for b in behaviors):
        return ['["' + '", "'.join(c) + '"]' for c in cands]
    encoded = {b: ENCODE(b) for b in behaviors}
    return ["[" + ", ".join([encoded[b] for b in c]) + "]" for c in cands]


def sample_rows(
    enc: EncodedEvents,
    targets: np.ndarray,
    args: PrepareArguments,
    split: str,
    cats,
    rng: np.random.Generator,
    options: PromptOptions,
    system: str,
) -> SplitRows:
    hist = history_indices(targets, args.history_len)
    prompts, fmts, cands = render_prompts(enc, targets, hist, rng, options)
    labels = [enc.behaviors[b] for b in enc.behavior[targets].tolist()]
    users = [enc.users[u] for u in enc.user[targets].tolist()]
    times = timestamp_texts(enc.timestamp[targets])
    prefix = f"{args.name}-{split}-"
    ids = [f"{prefix}{i:06d}" for i in range(len(targets))]
    id_json = ENCODE_STR(prefix)[:-1]  # + the digits + '"': digits never need escaping
    piece = {s: ENCODE(s) for s in set(labels) | set(fmts) | set(cats.anchor_tail.values())}
    piece |= {s: ENCODE(s) for s in set(cats.head_medium_tail.values())}
    record_tail = ', "input": "", "output": '
    system_tail = ', "system": ' + ENCODE(system) + "}"
    cand_json = _candidate_lists(cands, enc.behaviors)
    user_json: dict[str, str] = {}
    records, metas, record_lines, meta_lines = [], [], [], []
    for i, label in enumerate(labels):
        sid, at, hmt = ids[i], cats.anchor_tail[label], cats.head_medium_tail[label]
        records.append({"id": sid, "instruction": prompts[i], "input": "", "output": label, "system": system})
        meta = {"id": sid, "user_id": users[i], "timestamp": times[i], "label": label, "anchor_tail": at}
        meta |= {"head_medium_tail": hmt, "format": fmts[i], "candidates": cands[i]}
        metas.append(meta)
        sid_json = f'{id_json}{i:06d}"'
        record_lines.append(
            '{"id": ' + sid_json + ', "instruction": ' + ENCODE_STR(prompts[i]) + record_tail + piece[label]
            + system_tail
        )  # fmt: skip
        user = user_json.get(users[i])
        if user is None:
            user = user_json[users[i]] = ENCODE(users[i])
        meta_lines.append(
            '{"id": ' + sid_json + ', "user_id": ' + user + ', "timestamp": ' + ENCODE_STR(times[i]) + ', "label": '
            + piece[label] + ', "anchor_tail": ' + piece[at] + ', "head_medium_tail": ' + piece[hmt]
            + ', "format": ' + piece[fmts[i]] + ', "candidates": ' + cand_json[i] + "}"
        )  # fmt: skip
    return SplitRows(records, metas, record_lines, meta_lines)


def render_splits(w: Windows, args: PrepareArguments) -> dict[str, SplitRows]:
    """The rows of every behavior split; train_anchor/train_tail are train_all's rows by category."""
    for path in (args.prompt_template_files or "").split(","):
        if path.strip():
            load_prompt_format_file(path.strip(), overwrite=True)
    options = PromptOptions(formats=args.format_list, shuffle_candidates=not args.fixed_candidate_order)
    system = system_prompt()
    rows = {}
    for i, split in enumerate(FEATURE_SPLITS):
        rows[split] = sample_rows(w.enc, w.chosen[split], args, split, w.cats, split_rng(args, 10 + i), options, system)
    train = rows["train_all"]
    anchor = [m["anchor_tail"] == "anchor" for m in train.metas]
    for split, keep in (("train_anchor", True), ("train_tail", False)):
        rows[split] = SplitRows(*([x for x, a in zip(column, anchor, strict=True) if a == keep] for column in train))
    return rows


def conversation_line(row: dict, system_json: dict[str, str]) -> str:
    """``ENCODE(row)`` of a ShareGPT row, built from its strings when it has the usual layout
    (``conversations`` of ``from``/``value`` turns, then ``system``); ``system_json`` caches the system texts."""
    if type(row) is dict and tuple(row) == ("conversations", "system"):
        turns, system = row["conversations"], row["system"]
        if type(system) is str and type(turns) is list:
            parts = []
            for t in turns:
                if type(t) is not dict or tuple(t) != ("from", "value"):
                    break
                who, value = t["from"], t["value"]
                if type(who) is not str or type(value) is not str:
                    break
                parts.append('{"from": ' + ENCODE_STR(who) + ', "value": ' + ENCODE_STR(value) + "}")
            else:
                encoded = system_json.get(system)
                if encoded is None:
                    encoded = system_json[system] = ENCODE_STR(system)
                return '{"conversations": [' + ", ".join(parts) + '], "system": ' + encoded + "}"
    return ENCODE(row)


def conversation_lines(rows: list[dict]) -> list[str]:
    """The JSONL lines of ShareGPT rows (``atomic_write_jsonl``'s, byte for byte)."""
    cache: dict[str, str] = {}
    return [conversation_line(r, cache) for r in rows]


def mix_lines(mix: list[dict], anchors: SplitRows) -> list[str]:
    """``conversation_lines(mix)`` where the mix holds ``behavior_to_sharegpt`` rows of ``anchors``' records:
    each such row's prompt, already encoded in its record line, is cut from there instead of encoded again."""
    where = {id(r["instruction"]): i for i, r in enumerate(anchors.records)}
    json_of: dict[str, str] = {}
    line_of: dict[int, str] = {}  # the aux rows repeat the same few hundred dicts: each encoded once
    tails: dict[tuple[str, str], tuple[str, int]] = {}  # (label, system) -> (the mix line's end, record tail length)
    head, out = '{"conversations": [{"from": "human", "value": ', []
    for row in mix:
        i = _anchor_of(row, where, anchors.records)
        if i is None:
            line = line_of.get(id(row))
            if line is None:
                line = line_of[id(row)] = conversation_line(row, json_of)
            out.append(line)
            continue
        rec, line = anchors.records[i], anchors.record_lines[i]
        tail = tails.get((rec["output"], rec["system"]))
        if tail is None:
            label, system = ENCODE_STR(rec["output"]), ENCODE_STR(rec["system"])
            cut = len(', "input": "", "output": ' + label + ', "system": ' + system + "}")
            tail = tails[rec["output"], rec["system"]] = (
                '}, {"from": "gpt", "value": ' + label + '}], "system": ' + system + "}",
                cut,
            )
        start = 24 + len(ENCODE_STR(rec["id"]))  # len('{"id": ') + the id + len(', "instruction": ')
        out.append("".join((head, line[start : len(line) - tail[1]], tail[0])))
    return out


LAYOUT, TURN = ("conversations", "system"), ("from", "value")


def _anchor_of(row, where: dict[int, int], records: list[dict]) -> int | None:
    """The index of the record ``row`` was made from by ``behavior_to_sharegpt`` (the very same strings, in its
    layout), else None."""
    if type(row) is not dict or tuple(row) != LAYOUT or type(turns := row["conversations"]) is not list:
        return None
    if len(turns) != 2 or type(human := turns[0]) is not dict or type(gpt := turns[1]) is not dict:
        return None
    if tuple(human) != TURN or tuple(gpt) != TURN or human["from"] != "human" or gpt["from"] != "gpt":
        return None
    i = where.get(id(human["value"]))
    if i is None:
        return None
    rec = records[i]
    same = human["value"] is rec["instruction"] and gpt["value"] is rec["output"] and row["system"] is rec["system"]
    return i if same else None


def jsonl_text(lines: list[str]) -> str:
    """A JSONL file's text from its lines (``atomic_write_jsonl``'s layout)."""
    return "\n".join(lines) + ("\n" if lines else "")
