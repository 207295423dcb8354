"""A linear probe on the frozen layers' output: is the context in the representation the LoRA starts from?

The pilot (issue 24) finds that fine-tuning SmolLM2-135M with LoRA on its top N layers learns the label prior
only, while a logistic regression on the same samples' facts learns the context. This script asks where the
signal is lost. For each pilot size n it reads, from the frozen-layer cache the fine-tuning run filled
(``runs/frozen-cache``), the input of the first tuned layer at the last prompt token (the position whose output
predicts the answer) and, as a second probe, its mean over the prompt's tokens; it fits a multinomial logistic
regression on them (standardised, C chosen by 5-fold cross-validation on the training samples, never on val), and
scores val_balanced under the same prior-correction curve as every pilot row. No LLM weight is trained.

Reading the result: a probe near the facts' logistic regression says the context reaches the tuned layers and
the fine-tuning does not pick it up (an optimisation or objective problem: more steps, a class-balanced loss);
a probe near chance says the frozen layers do not carry it where the LoRA can read it (more tuned layers, or a
larger model).

The training samples' token ids are rebuilt with LLaMA-Factory's template exactly as training encoded them; a
sample whose ids have no cache file stops the script (the cache key is a hash of the ids, so a hit proves the
encoding). The val prompts' features come from one no-grad forward of the base model, checked against the cache
on training samples first.

    .venv/bin/python scripts/probe_frozen.py                       # every size whose fine-tuning run is cached
    .venv/bin/python scripts/probe_frozen.py --sizes 4000 8000

    .venv/bin/python scripts/probe_frozen.py --top top8 --sizes 4000 --controls   # N from top8/results.json

Writes ``docs/results/cpu-main/pilot/probe/<top>.json`` and ``<top>.md``; prints the table.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from pilot_gate import N_BOOT, PILOT, SPLIT, _acc_avg, _curve

from behaviorlm_plugin.data.dataset import PreparedDataset
from behaviorlm_plugin.eval.bootstrap import resample_weights
from behaviorlm_plugin.eval.prior_correction import log_prior
from behaviorlm_plugin.extras.fileio import atomic_write_json, atomic_write_text, read_jsonl
from behaviorlm_plugin.runs.bench.cache import data_fingerprint
from behaviorlm_plugin.tuning.frozen_reuse import FrozenCache, model_key

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "models" / "SmolLM2-135M-Instruct"
DATA = ROOT / "data" / "behavior_cpu_main"
SUBSETS = ROOT / "runs" / "bench-cache" / "subset"
CACHE = ROOT / "runs" / "frozen-cache"
OUT = PILOT / "probe"
C_GRID = (0.0001, 0.001, 0.01, 0.1, 1.0)
VAL_CACHE = ROOT / "runs" / "probe-cache"


def _user_text(row: dict) -> str:
    # LLaMA-Factory's alpaca converter: the instruction, then the input on a new line when there is one.
    return row["instruction"] + ("\n" + row["input"] if row.get("input") else "")


def encoder(template: str):
    from llamafactory.data import get_template_and_fix_tokenizer
    from llamafactory.hparams import DataArguments
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(MODEL))
    tpl = get_template_and_fix_tokenizer(tok, DataArguments(template=template))

    def encode(row: dict, answer: str) -> tuple[list[int], list[int]]:
        msgs = [{"role": "user", "content": _user_text(row)}, {"role": "assistant", "content": answer}]
        prompt, response = tpl.encode_oneturn(tok, msgs, row.get("system") or None)
        return list(prompt), list(response)

    return encode


def subset_rows(n: int, data_fp: str) -> list[dict]:
    """The natural train_all subset of ``n`` (seed 0) that the pilot's fine-tuning row trained on, from the step
    cache: of this data (its fingerprint), not restricted to a category, finished (a ``.partial`` folder is not)."""
    for folder in sorted(SUBSETS.glob("*")):
        step_file = folder / "step.json"
        if not step_file.is_file():
            continue  # a step still running, or killed: no step.json until it finishes
        spec = json.loads(step_file.read_text()).get("spec", {})
        if (
            spec.get("split") == "train_all"
            and spec.get("n") == n
            and spec.get("seed") == 0
            and spec.get("data") == data_fp
            and not spec.get("categories")
        ):
            return read_jsonl(folder / "data.jsonl")
    raise SystemExit(
        f"no finished train_all subset of n = {n} (seed 0, data {data_fp}) in {SUBSETS}: run the pilot's part for "
        "that size first, on this data"
    )


def train_features(rows: list[dict], encode, cache: FrozenCache) -> tuple[np.ndarray, np.ndarray, list]:
    last, mean, probe_ids = [], [], []
    for i, row in enumerate(rows):
        prompt, response = encode(row, row["output"])
        hidden = cache.load(prompt + response)
        if hidden is None:
            raise SystemExit(
                f"training sample {i} ({row.get('id')}): no frozen-layer cache file for its token ids in "
                f"{cache.folder}; the fine-tuning run of this size has not filled the cache (or the encoding differs)"
            )
        last.append(np.array(hidden[len(prompt) - 1]))
        mean.append(np.asarray(hidden[: len(prompt)]).mean(axis=0))
        if i < 4:
            probe_ids.append((prompt, np.array(hidden[len(prompt) - 1])))
    return np.stack(last), np.stack(mean), probe_ids


@torch.no_grad()
def forward_features(model, split: int, prompts: list[list[int]], batch: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """The input of layer ``split`` at the last prompt token and its mean over the prompt (right padding: exact)."""
    last, mean = [], []
    for i in range(0, len(prompts), batch):
        chunk = prompts[i : i + batch]
        width = max(map(len, chunk))
        ids = torch.zeros((len(chunk), width), dtype=torch.long)
        mask = torch.zeros_like(ids)
        for r, p in enumerate(chunk):
            ids[r, : len(p)] = torch.tensor(p)
            mask[r, : len(p)] = 1
        out = model.model(input_ids=ids, attention_mask=mask, output_hidden_states=True, use_cache=False)
        h = out.hidden_states[split].float().numpy()  # hidden_states[k] is layer k's input
        for r, p in enumerate(chunk):
            last.append(h[r, len(p) - 1])
            mean.append(h[r, : len(p)].mean(axis=0))
    return np.stack(last), np.stack(mean)


def fit_probe(x: np.ndarray, y: np.ndarray, seed: int = 0):
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    def model(c: float):
        return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000))

    # Classes with fewer than 5 samples cannot be stratified into 5 folds; they stay in training either way.
    counts = np.bincount(y)
    keep = counts[y] >= 5
    folds = StratifiedKFold(5, shuffle=True, random_state=seed)
    cv = {
        c: float(cross_val_score(model(c), x[keep], y[keep], cv=folds, scoring="neg_log_loss").mean()) for c in C_GRID
    }
    best = max(cv, key=cv.get)
    return model(best).fit(x, y), best, cv


def class_log_probs(fitted, x: np.ndarray, n_classes: int) -> np.ndarray:
    """[samples, n_classes] log probabilities; classes the training samples never held get -inf."""
    out = np.full((len(x), n_classes), -np.inf)
    out[:, fitted.classes_] = np.log(np.maximum(fitted.predict_proba(x), 1e-300))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="*", default=None, help="training sizes (default: every cached one)")
    ap.add_argument(
        "--top", default="top4", help="the pilot folder (top4, top8): its results.json gives val_balanced and N"
    )
    ap.add_argument(
        "--controls",
        action="store_true",
        help="also probe the next event's place and hour (facts the prompt states): does the probe have the power?",
    )
    args = ap.parse_args()

    from transformers import AutoModelForCausalLM

    results = json.loads((PILOT / args.top / "results.json").read_text())
    behaviors, cats = results["behaviors"], np.asarray(results["categories"])
    code = {b: i for i, b in enumerate(behaviors)}
    ev = results["eval_samples"][SPLIT]
    labels = np.asarray(ev["labels"])
    rule = _curve(results, "hour+place")
    alphas = rule["alphas"]
    stats = json.loads((DATA / "stats.json").read_text())
    lp = log_prior({b: v["train_frequency"] for b, v in stats["behaviors"].items()}, behaviors)

    top_layers = results.get("training", {}).get("lora_top_layers")
    if not top_layers:
        raise SystemExit(f"{PILOT / args.top / 'results.json'}: no training.lora_top_layers; rerun its --merge")
    data = PreparedDataset(DATA.parent, DATA.name)
    data_fp = data_fingerprint(data)
    model = AutoModelForCausalLM.from_pretrained(str(MODEL), dtype=torch.float32).eval()
    split = model.config.num_hidden_layers - top_layers
    cache = FrozenCache(CACHE, model_key(str(MODEL), split, torch.float32), max_bytes=1 << 62)
    encode = encoder(results.get("template") or "smollm2")

    val = {row["id"]: row for row in read_jsonl(DATA / f"{SPLIT}.jsonl")}
    val_prompts = [encode(val[i], "")[0] for i in ev["ids"]]
    sizes = args.sizes or [n for n in (1000, 2000, 4000, 8000) if _cached(n, data_fp, encode, cache)]
    if not sizes:
        raise SystemExit(f"no pilot size has its fine-tuning samples in the frozen-layer cache {cache.folder}")

    started = time.monotonic()
    feats = {}
    for n in sizes:
        rows = subset_rows(n, data_fp)
        last, mean, checks = train_features(rows, encode, cache)
        feats[n] = (last, mean, np.asarray([code[r["output"]] for r in rows]), [r["id"] for r in rows])
        print(f"n = {n}: {len(rows)} training samples' cached features read ({time.monotonic() - started:.0f} s)")
    # The val features' forward must reproduce the cache: checked on the first training samples.
    got, _ = forward_features(model, split, [p for p, _ in checks])
    gap = float(max(np.abs(g - want).max() for g, (_, want) in zip(got, checks, strict=True)))
    if gap > 1e-3:
        raise SystemExit(f"the forward's layer-{split} input differs from the cache by {gap:.2e}: not comparable")
    # The val features depend on the model, the split and the val ids only: kept beside the frozen-layer cache.
    # The key: the model and split (cache.model_key), the template that encoded the prompts, the val ids (checked).
    held = VAL_CACHE / f"{cache.model_key}-{results.get('template') or 'smollm2'}-{SPLIT}-{len(val_prompts)}.npz"
    stored = np.load(held) if held.exists() else None
    if stored is not None and list(stored["ids"]) == list(ev["ids"]):
        val_last, val_mean = stored["last"], stored["mean"]
    else:
        val_last, val_mean = forward_features(model, split, val_prompts)
        held.parent.mkdir(parents=True, exist_ok=True)
        tmp = held.with_name(f".{held.stem}.tmp.npz")
        np.savez(tmp, ids=np.asarray(ev["ids"]), last=val_last, mean=val_mean)
        tmp.replace(held)
    took = time.monotonic() - started
    print(f"val_balanced features: {len(val_prompts)} samples ({took:.0f} s; check gap {gap:.1e})")

    point = np.ones((1, len(labels)))
    boot = resample_weights(len(labels), N_BOOT, np.random.default_rng(0), groups=ev["users"])
    rule_boot = _acc_avg(labels, rule[SPLIT], cats, boot).max(axis=0)
    rule_best = float(_acc_avg(labels, rule[SPLIT], cats, point)[:, 0].max())
    report = {"split_layer": split, "val_samples": len(labels), "hour+place": rule_best, "check_gap": gap, "sizes": {}}
    for n in sizes:
        last, mean, y, ids = feats[n]
        entry = {}
        if args.controls:
            entry["controls"] = controls(data, ids, ev["ids"], last, val_last)
        for name, x, xv in (("last token", last, val_last), ("prompt mean", mean, val_mean)):
            fitted, c, cv = fit_probe(x, y)
            logp = class_log_probs(fitted, xv, len(behaviors))
            preds = [np.argmax(logp - a * lp[None, :], axis=1).tolist() for a in alphas]
            acc = _acc_avg(labels, preds, cats, point)[:, 0]
            delta = _acc_avg(labels, preds, cats, boot).max(axis=0) - rule_boot
            lo, hi = np.nanpercentile(delta, [2.5, 97.5])
            entry[name] = {
                "alpha0": float(acc[0]),
                "best": float(acc.max()),
                "alpha": alphas[int(acc.argmax())],
                "minus_hour_place": float(acc.max() - rule_best),
                "ci95": [float(lo), float(hi)],
                "C": c,
                "cv_log_loss": cv,
                "top_prediction_alpha0": int(np.bincount(np.asarray(preds[0])).max()),
            }
        for kind in ("fine-tuning", "logistic regression"):
            curve = _curve(results, f"{kind} ({n // 1000}k)")
            if curve is not None:
                entry[kind] = float(_acc_avg(labels, curve[SPLIT], cats, point)[:, 0].max())
        report["sizes"][str(n)] = entry
        print(f"n = {n}: probes fitted ({time.monotonic() - started:.0f} s)")

    OUT.mkdir(parents=True, exist_ok=True)
    atomic_write_json(OUT / f"{args.top}.json", report)
    text = table(report)
    atomic_write_text(OUT / f"{args.top}.md", text)
    print(text)


FACTS = ("next_place", "next_hour")
"""The positive controls: facts the prompt states in words, so a probe with the power to read the context finds them."""


def _facts(data: PreparedDataset, split: str, ids: list[str]) -> dict[str, np.ndarray]:
    """The prepared split's ``next_*`` facts for ``ids``, aligned by the split's row order (checked on the label)."""
    order = {row["id"]: i for i, row in enumerate(read_jsonl(data.path(split)))}
    feats = np.load(data.base / f"{split}.features.npz", allow_pickle=False)
    if len(order) != len(feats["label"]):
        raise SystemExit(f"{data.base / split}.features.npz: {len(feats['label'])} rows, {split}.jsonl {len(order)}")
    rows = np.asarray([order[i] for i in ids])
    return {f: feats[f][rows] for f in FACTS}


def controls(data: PreparedDataset, train_ids: list[str], val_ids: list[str], x: np.ndarray, xv: np.ndarray) -> dict:
    """Accuracy on val of last-token probes for the next event's place and hour, beside always the most frequent."""
    tr, va = _facts(data, "train_all", train_ids), _facts(data, SPLIT, val_ids)
    out = {}
    for fact in FACTS:
        fitted, c, _ = fit_probe(x, tr[fact].astype(int))
        majority = np.bincount(tr[fact].astype(int)).argmax()
        out[fact] = {
            "accuracy": float(np.mean(fitted.predict(xv) == va[fact])),
            "majority": float(np.mean(va[fact] == majority)),
            "classes": len(np.unique(tr[fact])),
            "C": c,
        }
    return out


def _cached(n: int, data_fp: str, encode, cache: FrozenCache) -> bool:
    try:
        rows = subset_rows(n, data_fp)
    except SystemExit:
        return False

    def ids(row: dict) -> list[int]:
        prompt, response = encode(row, row["output"])
        return prompt + response

    return all(cache.has(ids(r)) for r in rows[:: max(1, len(rows) // 20)])


def table(r: dict) -> str:
    lines = [
        f"### Linear probes on layer {r['split_layer']}'s input (the frozen layers' output), val_balanced Acc_avg "
        f"({r['val_samples']} samples)",
        "",
        f"hour+place at its best α: **{r['hour+place']:.3f}**. Each probe: best α of the curve; the interval is "
        "probe − hour+place, users resampled, both α chosen again in every resample.",
        "",
        "| n | probe: last token, α=0 / best α | − hour+place [95% CI] | probe: prompt mean, best α | "
        "fine-tuning best α | logistic regression (facts) best α |",
        "|---|---|---|---|---|---|",
    ]
    for n, e in r["sizes"].items():
        last, mean = e["last token"], e["prompt mean"]
        ft, lr = e.get("fine-tuning"), e.get("logistic regression")
        lines.append(
            f"| {int(n):,} | {last['alpha0']:.3f} / {last['best']:.3f} (α {last['alpha']}, C {last['C']}) | "
            f"{last['minus_hour_place']:+.3f} [{last['ci95'][0]:+.3f}, {last['ci95'][1]:+.3f}] | "
            f"{mean['best']:.3f} (α {mean['alpha']}) | {'–' if ft is None else f'{ft:.3f}'} | "
            f"{'–' if lr is None else f'{lr:.3f}'} |"
        )
    ctl = [
        f"{int(n):,}: "
        + ", ".join(
            f"{f.replace('_', ' ')} {c['accuracy']:.3f} (most frequent {c['majority']:.3f}, {c['classes']} classes)"
            for f, c in e["controls"].items()
        )
        for n, e in r["sizes"].items()
        if "controls" in e
    ]
    if ctl:
        lines += [
            "",
            "Positive controls, last-token probes for facts the prompt states (val accuracy): " + "; ".join(ctl),
        ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
