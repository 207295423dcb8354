"""Candidate token tries and left padding for the exact scorer (see :mod:`behaviorlm_plugin.model.scoring`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class Trie:
    """Candidate token prefixes, each stored once, in insertion order (parents before children)."""

    tokens: list[int]  # input token of each node
    depth: list[int]  # 0 for a candidate's first token
    ancestors: np.ndarray  # [n, n] bool: node i may attend to node j (j is i or an ancestor of i)
    paths: list[list[int]]  # per candidate: nodes for its tokens 0..n-2 (inputs that predict tokens 1..n-1)


def build_trie(cands: Sequence[Sequence[int]]) -> Trie:
    index: dict[tuple[int, ...], int] = {}
    tokens: list[int] = []
    depth: list[int] = []
    parent: list[int] = []
    paths = []
    for c in cands:
        path = []
        for i in range(len(c) - 1):  # the last token (the end token) is only predicted, never fed
            key = tuple(c[: i + 1])
            if key not in index:
                index[key] = len(tokens)
                tokens.append(c[i])
                depth.append(i)
                parent.append(path[-1] if path else -1)
            path.append(index[key])
        paths.append(path)
    n = len(tokens)
    anc = np.eye(n, dtype=bool)
    for i in range(n):  # parents come first, so their rows are complete
        if parent[i] >= 0:
            anc[i] |= anc[parent[i]]
    return Trie(tokens, depth, anc, paths)


def left_pad(seqs: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded ``input_ids`` and ``attention_mask`` for a batch of token lists."""
    width = max(len(x) for x in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    attn = torch.zeros((len(seqs), width), dtype=torch.long)
    for r, x in enumerate(seqs):
        ids[r, width - len(x) :] = torch.tensor(x, dtype=torch.long)
        attn[r, width - len(x) :] = 1
    return ids, attn


def first_token_index(batch) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """(row, first token) of every candidate of the batch, flattened in order, and candidates per row."""
    rows, firsts, counts = [], [], []
    for r, (_, cands) in enumerate(batch):
        rows += [r] * len(cands)
        firsts += [c[0] for c in cands]
        counts.append(len(cands))
    return torch.tensor(rows), torch.tensor(firsts), counts


def continuation_index(batch, tries) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """For each token after a candidate's first: its row, the trie node that predicts it, the token, and
    the candidate's index in the flattened batch."""
    row, node, tok, cand = [], [], [], []
    offset = 0
    for r, ((_, cands), trie) in enumerate(zip(batch, tries, strict=True)):
        for j, path in enumerate(trie.paths):
            # path[i] is the node whose output predicts token i+1 of candidate j
            row += [r] * len(path)
            node += path
            tok += cands[j][1 : len(path) + 1]
            cand += [offset + j] * len(path)
        offset += len(cands)
    as_long = lambda xs: torch.tensor(xs, dtype=torch.long)  # noqa: E731
    return as_long(row), as_long(node), as_long(tok), as_long(cand)
