"""Reuse of the frozen layers' output in LoRA training: computed once per sample, served from a disk cache.

With LoRA on the top N of L decoder layers (``lora_top_layers``), layers 0..L-N-1 never change, and their forward
is most of a training step on a small model. :func:`frozen_reuse_callback` makes LLaMA-Factory's own trainer
(``run_exp``) skip them:

* **fill**, at the start of training: for every sample of the *training dataset* (not the dataloader, so the
  shuffle and dropout streams stay as they are) whose output is not cached, one no-grad forward up to the first
  tuned layer, batched with right padding (exact: a causal model's real tokens never see the padding after them);
  the result, ``[tokens, hidden]`` per sample, goes to a disk cache keyed by a hash of the unpadded token ids and
  of the model (its weights file, dtype, the split, torch and transformers versions), under a size cap;
* **serve**, on every training forward: the frozen layers become identity functions, and a forward pre-hook on
  the first tuned layer replaces its input with the cached tensors (placed by each row's unpadded length; the
  padded positions get zeros, which no real token attends to). The stock forward still builds the masks and the
  rotary embeddings; no layer is removed, so PEFT's adapter names (by layer index) stay as they are.

Evaluation passes (``model.eval()``) and any batch that is not right-padded take the stock forward. Settings it
cannot serve exactly are refused with a message: packing, NEFTune, dropout inside the frozen layers, and
trainable weights below the split (then nothing is frozen to reuse). The loss and gradients are the stock
forward's: ``tests/tuning/test_frozen_reuse.py`` compares the saved adapters of the two through ``run_exp``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import numpy as np
import torch

from behaviorlm_plugin.extras.fileio import atomic_write_json
from behaviorlm_plugin.tuning.answer_logits import _causal_lm

FILL_BATCH = 8
"""Samples per no-grad pass when filling the cache (sorted by length, so little padding)."""


class FrozenReuseError(ValueError):
    """Training settings the reuse cannot serve exactly; the message names the setting and the way out."""


class _StopForward(Exception):
    """Raised by the capture hook once the first tuned layer's input is known: the rest of the pass is not needed."""


@dataclass
class FrozenCache:
    """``root/<model key>/<sample hash>.npy`` (float32 ``[tokens, hidden]``), filled until ``max_bytes``."""

    root: Path
    model_key: str
    max_bytes: int
    used: int = 0
    stats: dict = field(default_factory=lambda: {"hits": 0, "filled": 0, "over_cap": 0})

    def __post_init__(self) -> None:
        self.folder = Path(self.root) / self.model_key
        self.folder.mkdir(parents=True, exist_ok=True)
        self.used = sum(f.stat().st_size for f in self.folder.glob("*.npy"))

    @staticmethod
    def sample_key(ids: list[int]) -> str:
        return hashlib.sha256(np.asarray(ids, dtype=np.int64).tobytes()).hexdigest()[:32]

    def path(self, ids: list[int]) -> Path:
        return self.folder / f"{self.sample_key(ids)}.npy"

    def has(self, ids: list[int]) -> bool:
        return self.path(ids).exists()

    def load(self, ids: list[int]) -> np.ndarray | None:
        path = self.path(ids)
        if not path.exists():
            return None
        self.stats["hits"] += 1
        return np.load(path, mmap_mode="r")

    def store(self, ids: list[int], hidden: np.ndarray) -> bool:
        """Write one sample's output (atomically); False past the size cap (that sample is computed each time)."""
        size = hidden.nbytes + 128
        if self.used + size > self.max_bytes:
            self.stats["over_cap"] += 1
            return False
        path = self.path(ids)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.npy")
        np.save(tmp, np.ascontiguousarray(hidden, dtype=np.float32))
        os.replace(tmp, path)
        self.used += size
        self.stats["filled"] += 1
        return True


def model_key(model_path: str, split: int, dtype: torch.dtype) -> str:
    """The model's identity for the cache: its weights' content, the split, the dtype and the library versions."""
    h = hashlib.sha256()
    folder = Path(model_path)
    weights = sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin")) if folder.is_dir() else []
    for w in weights:
        h.update(w.name.encode())
        h.update(str(w.stat().st_size).encode())
        with w.open("rb") as fh:  # the first and last MiB: content, cheaply (a re-save changes both)
            h.update(fh.read(1 << 20))
            fh.seek(max(0, w.stat().st_size - (1 << 20)))
            h.update(fh.read())
    if not weights:
        h.update(str(model_path).encode())
    for pkg in ("torch", "transformers"):
        h.update(metadata.version(pkg).encode())
    h.update(f"{split}|{dtype}".encode())
    return h.hexdigest()[:24]


def decoder_layers(lm) -> torch.nn.ModuleList:
    layers = getattr(getattr(lm, "model", None), "layers", None)
    if not isinstance(layers, torch.nn.ModuleList):
        raise FrozenReuseError("frozen-layer reuse needs a decoder with model.layers (Llama/Qwen/Mistral style)")
    return layers


def split_index(model) -> int:
    """The first decoder layer with a trainable weight (layers below it are frozen); checks nothing below trains."""
    lm = _causal_lm(model)
    if lm is None:
        raise FrozenReuseError("frozen-layer reuse: the model has no causal-LM module it recognises")
    layers = decoder_layers(lm)
    trainable = [i for i, layer in enumerate(layers) if any(p.requires_grad for p in layer.parameters())]
    if not trainable:
        raise FrozenReuseError("frozen-layer reuse: no decoder layer is trained")
    embed = lm.get_input_embeddings()
    if any(p.requires_grad for p in embed.parameters()):
        raise FrozenReuseError(
            "frozen-layer reuse: the input embeddings are trained (modules_to_save or a full fine-tune), so nothing "
            "below the adapter is frozen; turn the reuse off"
        )
    return trainable[0]


def check_settings(cfg: dict, model_config) -> None:
    """Settings the reuse cannot serve exactly, refused before any step."""
    if cfg.get("packing") or cfg.get("neat_packing"):
        raise FrozenReuseError("frozen-layer reuse: packing mixes samples in one row; turn packing off or the reuse")
    if cfg.get("neftune_noise_alpha"):
        raise FrozenReuseError("frozen-layer reuse: NEFTune adds noise to the embeddings each step; turn one off")
    for key in ("attention_dropout", "hidden_dropout", "resid_pdrop", "embd_pdrop", "dropout"):
        if float(getattr(model_config, key, 0.0) or 0.0) > 0:
            raise FrozenReuseError(
                f"frozen-layer reuse: the model's {key} is {getattr(model_config, key)}: the frozen layers are not "
                "deterministic in training; set it to 0 or turn the reuse off"
            )


def _right_padded(mask: torch.Tensor) -> bool:
    lengths = mask.sum(dim=1)
    positions = torch.arange(mask.shape[1], device=mask.device)[None, :]
    return bool(torch.equal(mask.bool(), positions < lengths[:, None]))


class FrozenReuse:
    """The fill and serve hooks on one model (see the module docstring)."""

    def __init__(self, model, cache: FrozenCache, split: int) -> None:
        self.lm = _causal_lm(model)
        self.layers = decoder_layers(self.lm)
        self.cache = cache
        self.split = split
        self.batch: dict | None = None  # the current training forward's input_ids and attention_mask
        self.served = 0

    # ---- fill
    @torch.no_grad()
    def fill(self, dataset, log=print) -> None:
        todo = [list(map(int, ex["input_ids"])) for ex in dataset]
        todo = sorted({tuple(ids) for ids in todo if not self.cache.has(ids)}, key=len)
        if not todo:
            log(f"[frozen-reuse] every sample's first {self.split} layers are cached")
            return
        was_training = self.lm.training
        self.lm.eval()
        captured: dict = {}

        def capture(module, args, kwargs):
            captured["h"] = args[0] if args else kwargs["hidden_states"]
            raise _StopForward

        handle = self.layers[self.split].register_forward_pre_hook(capture, with_kwargs=True)
        device = next(self.lm.parameters()).device
        log(f"[frozen-reuse] caching the first {self.split} layers' output of {len(todo)} samples")
        started, step = time.monotonic(), max(FILL_BATCH, -(-len(todo) // 10))  # progress about every 10%
        total_tokens, done_tokens = sum(map(len, todo)), 0
        try:
            for i in range(0, len(todo), FILL_BATCH):
                if i and i // step != (i - FILL_BATCH) // step:
                    # By tokens: the samples run shortest first, so a rate in samples would promise too much.
                    rate = done_tokens / max(time.monotonic() - started, 1e-9)
                    left = (total_tokens - done_tokens) / rate / 60
                    log(f"[frozen-reuse] {i}/{len(todo)} samples, {rate:.0f} tokens/s, ~{left:.1f} min left")
                chunk = todo[i : i + FILL_BATCH]
                done_tokens += sum(map(len, chunk))
                width = max(len(c) for c in chunk)
                ids = torch.zeros((len(chunk), width), dtype=torch.long, device=device)
                mask = torch.zeros_like(ids)
                for r, c in enumerate(chunk):
                    ids[r, : len(c)] = torch.tensor(c, device=device)
                    mask[r, : len(c)] = 1
                with contextlib.suppress(_StopForward):  # the capture hook ends the pass at the first tuned layer
                    self.lm.model(input_ids=ids, attention_mask=mask, use_cache=False)
                hidden = captured.pop("h").float().cpu().numpy()
                for r, c in enumerate(chunk):
                    self.cache.store(list(c), hidden[r, : len(c)])
        finally:
            handle.remove()
            self.lm.train(was_training)
        log(f"[frozen-reuse] cached the first {self.split} layers' output of {len(todo)} samples")

    # ---- serve
    def install(self) -> None:
        def remember(module, args, kwargs):
            ids, mask = kwargs.get("input_ids"), kwargs.get("attention_mask")
            usable = self.lm.training and ids is not None and mask is not None and mask.dim() == 2
            self.batch = {"ids": ids, "mask": mask} if usable and _right_padded(mask) else None

        self.lm.model.register_forward_pre_hook(remember, with_kwargs=True)
        for layer in list(self.layers)[: self.split]:
            stock = layer.forward

            def forward(hidden_states, *args, _stock=stock, **kwargs):
                if self.batch is None:
                    return _stock(hidden_states, *args, **kwargs)
                return hidden_states  # served below: the first tuned layer's input comes from the cache

            layer.forward = forward

        def serve(module, args, kwargs):
            if self.batch is None:
                return None
            hidden = args[0] if args else kwargs["hidden_states"]
            out = torch.zeros_like(hidden)
            ids, mask = self.batch["ids"], self.batch["mask"]
            for r in range(ids.shape[0]):
                n = int(mask[r].sum())
                row = [int(t) for t in ids[r, :n]]
                cached = self.cache.load(row)
                if cached is None:  # past the cap: this batch's frozen layers run as usual
                    raise FrozenReuseError(f"frozen-layer reuse: sample {self.cache.sample_key(row)} is not cached")
                out[r, :n] = torch.from_numpy(np.array(cached)).to(out.dtype)
            self.served += ids.shape[0]
            if args:
                return (out, *args[1:]), kwargs
            return args, {**kwargs, "hidden_states": out}

        self.layers[self.split].register_forward_pre_hook(serve, with_kwargs=True)


def frozen_reuse_callback(cfg: dict, cache_dir: str | Path, max_gb: float, log=print):
    """A ``TrainerCallback`` that fills the cache from the training dataset and installs the serving hooks."""
    from transformers import TrainerCallback

    class ReuseFrozenLayers(TrainerCallback):
        def on_train_begin(self, args, state, control, model=None, train_dataloader=None, **kwargs):
            check_settings(cfg, model.config)
            split = split_index(model)
            if split == 0:
                log("[frozen-reuse] the adapter starts at layer 0: nothing is frozen, the stock forward runs")
                return
            dtype = next(_causal_lm(model).parameters()).dtype
            key = model_key(str(cfg["model_name_or_path"]), split, dtype)
            cache = FrozenCache(Path(cache_dir), key, int(max_gb * 1e9))
            reuse = FrozenReuse(model, cache, split)
            dataset = getattr(train_dataloader, "dataset", None)
            if dataset is None:
                raise FrozenReuseError("frozen-layer reuse: the trainer gave no training dataset to fill the cache")
            reuse.fill(dataset, log)
            reuse.install()
            self.reuse = reuse

        def on_train_end(self, args, state, control, **kwargs):
            reuse = getattr(self, "reuse", None)
            if reuse is not None:
                record = {"split": reuse.split, "served": reuse.served, **reuse.cache.stats}
                atomic_write_json(Path(args.output_dir) / "frozen_reuse.json", record)
                log(f"[frozen-reuse] served {reuse.served} samples from the cache; {reuse.cache.stats}")

    return ReuseFrozenLayers()
