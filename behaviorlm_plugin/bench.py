"""``behaviorlm bench suite.yaml``: BehaviorLM against its baselines and ablations, over seeds.

A suite lists *variants* (zero-shot, full fine-tuning, anchor-only, BehaviorLM, ablations,
sweeps) that are built from a handful of *steps*:

    mix      anchor samples + λ auxiliary conversations (the A-Tuning data)
    subset   a seeded random subset of a prepared split (full fine-tuning, reverse curriculum)
    train    one LoRA stage through LLaMA-Factory, optionally continuing an earlier adapter
    select   DDS/CDS (or uniform) selection scored by a stage-1 model
    eval     candidate scoring on the capped test splits + metrics
    sasrec   the SASRec baseline (search once per seed, then a train-size curve)

Every step is cached under ``cache_dir/<step>/<key>`` where the key hashes the step's own
settings, the data fingerprint and the keys of the steps it reads -- never a path.  So the
A-Tuning shared by BehaviorLM, its selection ablations and the k sweep runs once per seed,
zero-shot evaluation runs once for all seeds, a second suite over the same data reuses the
first's work, and a killed run resumes at the step it was in (a step becomes visible only
when its folder is renamed into place).  The bench's training datasets live in its own
``cache_dir/datasets/dataset_info.json``; the user's registry is never touched.

Outputs in ``out_dir``: ``results.json`` (every variant × seed, the step keys and timings),
``report.md`` (paper-style table with mean ± std and relative improvement over the best
baseline, ablation deltas, sweeps, SASRec search and sample efficiency) and plots.
"""

from __future__ import annotations

import json
import platform
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml

from .fileio import atomic_write_json, atomic_write_jsonl, atomic_write_text, read_jsonl
from .metrics import SUMMARY_KEYS
from .pipeline import digest, file_hash

VariantKind = Literal["zero_shot", "anchor_only", "behaviorlm", "full_ft", "reverse"]
GROUPS = ("baseline", "ours", "ablation", "sweep")
DATA_FILES = ("train_all", "train_anchor", "train_tail", "val", "test", "test_balanced", "aux")
# The paper reports weighted metrics on the natural test set and class means on the balanced one.
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("wP", "test", "weighted_precision"),
    ("wR", "test", "weighted_recall"),
    ("Acc_avg", "test_balanced", "acc_avg"),
    ("head", "test_balanced", "acc_head"),
    ("medium", "test_balanced", "acc_medium"),
    ("tail", "test_balanced", "acc_tail"),
)


class BenchError(ValueError):
    """A bad suite file; the message names the key and the fix."""


# ----------------------------------------------------------------------------- config
@dataclass
class VariantConfig:
    r"""One row of the report.

    kind:
        ``zero_shot`` (the base model, the paper's NT), ``anchor_only`` (A-Tuning alone),
        ``behaviorlm`` (A-Tuning then B-Tuning; ablations change its blocks), ``full_ft``
        (one stage on a natural-distribution subset of train_all: TALLRec/LLaRA-style) and
        ``reverse`` (stage 1 on tail+medium samples, then the balanced B-Tuning set).
    group:
        ``baseline`` rows are what BehaviorLM is compared with; ``ours`` is the main row;
        ``ablation`` rows get deltas against ``ours``; ``sweep`` rows feed the sweep plots.
    """

    name: str
    kind: VariantKind
    group: Literal["baseline", "ours", "ablation", "sweep"] = "ablation"
    a_tuning: dict = field(default_factory=dict)  # {anchors, aux_ratio} over the suite defaults
    selection: dict = field(default_factory=dict)  # SelectionArguments over the suite defaults
    skip_a_tuning: bool = False  # the paper's "w/o A-Tuning"
    train_samples: int | str | None = None  # full_ft: an int, or "matched" (= ours: A mix + B set)
    seeds: list[int] | None = None  # a subset of the suite's seeds, for costly rows; None = all
    description: str = ""

    def __post_init__(self) -> None:
        if self.kind not in ("zero_shot", "anchor_only", "behaviorlm", "full_ft", "reverse"):
            raise BenchError(
                f"variant {self.name!r}: kind must be zero_shot, anchor_only, behaviorlm, full_ft or reverse, "
                f"got {self.kind!r}"
            )
        if self.group not in GROUPS:
            raise BenchError(f"variant {self.name!r}: group must be one of {GROUPS}, got {self.group!r}")
        unknown = set(self.a_tuning) - {"anchors", "aux_ratio"}
        if unknown:
            raise BenchError(f"variant {self.name!r}: a_tuning keys are anchors and aux_ratio, got {sorted(unknown)}")
        if self.kind == "full_ft":
            ok = self.train_samples == "matched" or (isinstance(self.train_samples, int) and self.train_samples > 0)
            if not ok:
                raise BenchError(
                    f"variant {self.name!r}: full_ft needs train_samples: a positive int or 'matched', "
                    f"got {self.train_samples!r}"
                )
        elif self.train_samples is not None:
            raise BenchError(f"variant {self.name!r}: train_samples only applies to kind full_ft")
        if self.skip_a_tuning and self.kind != "behaviorlm":
            raise BenchError(f"variant {self.name!r}: skip_a_tuning only applies to kind behaviorlm")


@dataclass
class SASRecBench:
    r"""The SASRec baseline inside a suite.

    grid: searched once per seed on the full train_all (best val accuracy wins);
    config: the fixed settings around the grid; train_sizes: the sample-efficiency curve,
    trained with the searched config (no per-size search).
    """

    enabled: bool = True
    grid: dict = field(default_factory=lambda: {"lr": [3e-4, 1e-3, 3e-3], "d_model": [32, 64, 128]})
    config: dict = field(default_factory=dict)
    train_sizes: list[int] = field(default_factory=list)


@dataclass
class SuiteConfig:
    r"""A ``suite.yaml`` (see ``yaml_recipes/bench/``).

    Where: name, cache_dir, out_dir
    Model and recipes: model_name_or_path, template, recipes (a_tuning/b_tuning YAMLs, relative
        to the suite file), overrides (per stage, over the recipes)
    Data: prepare (``behaviorlm prepare`` arguments; prepared once, shared by every seed)
    Repetition: seeds (each seeds training, the anchor/aux draw, subsets and the selection pool)
    Defaults: a_tuning ({anchors, aux_ratio}), selection (SelectionArguments)
    Evaluation: evaluation (splits, per-split caps, fixed subset seed, batch size)
    Rows: ours (the main variant's name), variants, sweeps ({aux_ratio: [...], k: [...]}), sasrec
    """

    name: str
    model_name_or_path: str
    template: str
    recipes: dict
    prepare: dict
    variants: list[VariantConfig]
    seeds: list[int] = field(default_factory=lambda: [0])
    cache_dir: str = "runs/bench-cache"
    out_dir: str = "runs/bench"
    ours: str = "BehaviorLM"
    a_tuning: dict = field(default_factory=lambda: {"anchors": None, "aux_ratio": 0.05})
    selection: dict = field(default_factory=dict)
    evaluation: dict = field(default_factory=lambda: {"splits": ["test", "test_balanced"]})
    overrides: dict = field(default_factory=dict)
    sweeps: dict = field(default_factory=dict)
    sasrec: SASRecBench = field(default_factory=SASRecBench)
    base_dir: str = "."

    def __post_init__(self) -> None:
        for key in ("a_tuning", "b_tuning"):
            if key not in self.recipes:
                raise BenchError(f"suite {self.name!r}: recipes.{key} is required (a LLaMA-Factory YAML)")
            if not self.recipe_path(key).is_file():
                raise BenchError(f"suite {self.name!r}: recipes.{key} {self.recipe_path(key)} not found")
        if not self.prepare.get("name") or not self.prepare.get("dataset_dir"):
            raise BenchError(f"suite {self.name!r}: 'prepare' needs at least dataset_dir and name (and a source)")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise BenchError(f"suite {self.name!r}: seeds must be a non-empty list of distinct ints")
        unknown = set(self.sweeps) - {"aux_ratio", "k", "seeds"}
        if unknown:
            raise BenchError(f"suite {self.name!r}: sweeps are aux_ratio, k and seeds; got {sorted(unknown)}")
        unknown = set(self.overrides) - {"a_tuning", "b_tuning"}
        if unknown:
            raise BenchError(f"suite {self.name!r}: overrides keys are a_tuning and b_tuning, got {sorted(unknown)}")
        for split in self.evaluation.get("splits", []):
            if split not in ("val", "test", "test_balanced"):
                raise BenchError(f"suite {self.name!r}: evaluation.splits must be val, test or test_balanced")
        names = [v.name for v in self.variants]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise BenchError(f"suite {self.name!r}: duplicate variant names {dupes}")
        if self.ours not in names:
            raise BenchError(f"suite {self.name!r}: ours = {self.ours!r} is not a variant (have {names})")
        if self.variant(self.ours).kind != "behaviorlm":
            raise BenchError(f"suite {self.name!r}: the 'ours' variant must have kind behaviorlm")
        self.variants.extend(self._sweep_variants())
        for v in self.variants:
            if v.seeds is not None and (not v.seeds or set(v.seeds) - set(self.seeds)):
                raise BenchError(
                    f"suite {self.name!r}: variant {v.name!r} seeds {v.seeds} must be a non-empty subset of "
                    f"the suite's seeds {self.seeds}"
                )
        ours, matched = self.variant(self.ours), [v for v in self.variants if v.train_samples == "matched"]
        for v in matched:
            if ours.seeds is not None and set(v.seeds or self.seeds) - set(ours.seeds):
                raise BenchError(f"suite {self.name!r}: {v.name!r} is matched to {self.ours!r}, so needs its seeds")

    def seeds_of(self, v: VariantConfig) -> list[int]:
        return v.seeds if v.seeds is not None else self.seeds

    def recipe_path(self, stage: str) -> Path:
        return Path(self.base_dir) / self.recipes[stage]

    def variant(self, name: str) -> VariantConfig:
        return next(v for v in self.variants if v.name == name)

    def _sweep_variants(self) -> list[VariantConfig]:
        """One ``behaviorlm`` row per sweep value, equal to ``ours`` but for that value."""
        ours = self.variant(self.ours)

        def row(name: str, a_tuning: dict, selection: dict) -> VariantConfig:
            return VariantConfig(
                name=name,
                kind="behaviorlm",
                group="sweep",
                seeds=self.sweeps.get("seeds"),
                a_tuning={**ours.a_tuning, **a_tuning},
                selection={**ours.selection, **selection},
            )

        return [row(f"λ={v:g}", {"aux_ratio": v}, {}) for v in self.sweeps.get("aux_ratio", [])] + [
            row(f"k={v}", {}, {"k": v}) for v in self.sweeps.get("k", [])
        ]

    @property
    def data_base(self) -> Path:
        return Path(self.prepare["dataset_dir"]) / self.prepare["name"]


def load_suite(path: str | Path, sets: list[str] | None = None) -> SuiteConfig:
    from .pipeline import apply_overrides

    path = Path(path)
    if not path.is_file():
        raise BenchError(f"{path}: suite file not found")
    raw = apply_overrides(yaml.safe_load(path.read_text()) or {}, sets or [])
    known = set(SuiteConfig.__dataclass_fields__) - {"base_dir"}
    unknown = set(raw) - known
    if unknown:
        raise BenchError(f"{path}: unknown key(s) {sorted(unknown)}; known: {sorted(known)}")
    try:
        variants = [VariantConfig(**v) for v in raw.pop("variants", [])]
        sasrec = SASRecBench(**(raw.pop("sasrec", None) or {}))
        return SuiteConfig(**raw, variants=variants, sasrec=sasrec, base_dir=str(path.parent))
    except TypeError as err:
        raise BenchError(f"{path}: {err}") from err


# ----------------------------------------------------------------------------- step cache
@dataclass
class Step:
    kind: str
    key: str
    dir: Path
    info: dict
    seconds: float
    cached: bool


class StepCache:
    """Content-addressed step folders: ``root/<kind>/<key>/step.json`` marks a finished step."""

    def __init__(self, root: str | Path, log: Callable[[str], None] = print) -> None:
        self.root = Path(root)
        self.log = log
        self.ran: list[Step] = []

    def run(self, kind: str, spec: dict, fn: Callable[[Path], dict], label: str = "") -> Step:
        key = digest({"kind": kind, **spec})
        final = self.root / kind / key
        marker = final / "step.json"
        if marker.exists():
            rec = json.loads(marker.read_text())
            step = Step(kind, key, final, rec["info"], rec["seconds"], True)
            self.log(f"[bench] {kind} {key} {label}: cached ({rec['seconds']:.1f} s saved)")
        else:
            tmp = self.root / kind / f"{key}.partial"
            shutil.rmtree(tmp, ignore_errors=True)  # what a killed run left behind
            tmp.mkdir(parents=True)
            self.log(f"[bench] {kind} {key} {label}: running")
            t0 = time.time()
            info = fn(tmp)
            seconds = round(time.time() - t0, 2)
            atomic_write_json(
                tmp / "step.json", {"kind": kind, "key": key, "spec": spec, "info": info, "seconds": seconds}
            )
            shutil.rmtree(final, ignore_errors=True)
            tmp.rename(final)
            step = Step(kind, key, final, info, seconds, False)
            self.log(f"[bench] {kind} {key} {label}: done in {seconds:.1f} s")
        self.ran.append(step)
        return step


# ----------------------------------------------------------------------------- runner
def data_fingerprint(base: Path) -> str:
    """Content of the prepared splits (not stats.json, whose timings change on every prepare)."""
    stats = json.loads((base / "stats.json").read_text())
    files = {s: file_hash(base / f"{s}.jsonl") for s in DATA_FILES if (base / f"{s}.jsonl").exists()}
    return digest({"files": files, "behaviors": stats["behaviors"]})


class BenchRunner:
    """Runs a suite: every variant for every seed, through the step cache."""

    def __init__(self, suite: SuiteConfig, *, log: Callable[[str], None] = print, only: list[str] | None = None):
        self.suite = suite
        self.log = log
        self.cache = StepCache(suite.cache_dir, log)
        self.datasets_dir = Path(suite.cache_dir) / "datasets"
        self.only = only
        if only:
            missing = sorted(set(only) - {v.name for v in suite.variants})
            if missing:
                raise BenchError(f"--only: unknown variant(s) {missing}")
        self.fp = ""  # data fingerprint and stats: set by run() once the data is prepared
        self.stats: dict = {}
        self.model_id = {"model": suite.model_name_or_path, "template": suite.template}

    # ---- steps
    def _register(self, name: str, path: Path, formatting: str) -> None:
        from .registry import make_entry, register_datasets

        register_datasets(
            dataset_dir=self.datasets_dir,
            entries={name: make_entry(str(path.resolve()), formatting)},
            overwrite=True,
        )

    def mix(self, anchors: int | None, aux_ratio: float, seed: int) -> Step:
        from . import aux_data

        base = self.suite.data_base

        def build(out: Path) -> dict:
            recs = read_jsonl(base / "train_anchor.jsonl")
            rng = np.random.default_rng([seed, 1])
            if anchors is not None and anchors < len(recs):
                recs = [recs[i] for i in np.sort(rng.choice(len(recs), anchors, replace=False))]
            n_aux = aux_data.aux_count(len(recs), aux_ratio)
            aux, repeats = aux_data.pick_aux(read_jsonl(base / "aux.jsonl"), n_aux, rng)
            rows = [aux_data.behavior_to_sharegpt(r["system"], r["instruction"], r["output"]) for r in recs] + aux
            rows = [rows[i] for i in rng.permutation(len(rows))]
            atomic_write_jsonl(out / "data.jsonl", rows)
            return {"n": len(rows), "anchors": len(recs), "aux": len(aux), "aux_pool_repeats": repeats}

        spec = {"data": self.fp, "anchors": anchors, "aux_ratio": aux_ratio, "seed": seed}
        step = self.cache.run("mix", spec, build, f"(anchors={anchors}, λ={aux_ratio}, seed={seed})")
        self._register(f"bench_{step.key}", step.dir / "data.jsonl", "sharegpt")
        return step

    def subset(self, split: str, n: int, seed: int, categories: tuple[str, ...] | None = None) -> Step:
        """``n`` random samples of a split; with ``categories``, only samples whose label is in those
        head/medium/tail categories, and all of them when fewer than ``n`` exist."""
        base = self.suite.data_base

        def build(out: Path) -> dict:
            recs = read_jsonl(base / f"{split}.jsonl")
            if categories is not None:
                metas = read_jsonl(base / f"{split}.meta.jsonl")
                recs = [r for r, m in zip(recs, metas, strict=True) if m["head_medium_tail"] in categories]
                if not recs:
                    raise BenchError(f"{base / split}.jsonl has no samples labelled {'/'.join(categories)}")
            elif n > len(recs):
                raise BenchError(f"{base / split}.jsonl has {len(recs)} samples, fewer than the {n} asked for")
            k = min(n, len(recs))
            idx = np.random.default_rng([seed, 2]).choice(len(recs), k, replace=False)
            atomic_write_jsonl(out / "data.jsonl", [recs[i] for i in idx])
            return {"n": k, "available": len(recs)}

        spec = {"data": self.fp, "split": split, "n": n, "seed": seed}
        if categories is not None:
            spec["categories"] = list(categories)
        step = self.cache.run(
            "subset", spec, build, f"({split}, n={n}{', ' + '+'.join(categories) if categories else ''})"
        )
        self._register(f"bench_{step.key}", step.dir / "data.jsonl", "alpaca")
        return step

    def train_config(self, stage: str, seed: int) -> dict:
        """The stage recipe with suite overrides, minus what the bench points at its own files."""
        cfg = yaml.safe_load(self.suite.recipe_path(stage).read_text()) or {}
        cfg.update(self.suite.overrides.get(stage, {}))
        for k in ("adapter_name_or_path", "output_dir", "dataset_dir", "dataset", "model_name_or_path", "template"):
            cfg.pop(k, None)
        cfg.update(seed=seed, overwrite_output_dir=True)
        if "eval_dataset" in cfg:
            cfg["eval_dataset"] = "bench_val"
        return cfg

    def train(self, stage: str, data: Step, init: Step | None, seed: int) -> Step:
        from .pipeline import run_training

        recipe = self.train_config(stage, seed)

        def build(out: Path) -> dict:
            cfg = dict(
                recipe,
                model_name_or_path=self.suite.model_name_or_path,
                template=self.suite.template,
                dataset_dir=str(self.datasets_dir),
                dataset=f"bench_{data.key}",
                output_dir=str(out),
            )
            if init is not None:
                cfg["adapter_name_or_path"] = str(init.dir)
            yaml_path = out / "train.yaml"
            atomic_write_text(yaml_path, yaml.safe_dump(cfg, sort_keys=False))
            launcher = run_training(cfg, yaml_path)
            if not (out / "adapter_model.safetensors").exists():
                raise RuntimeError(f"[bench] LLaMA-Factory finished but wrote no adapter in {out}")
            return {"launcher": launcher, "samples": data.info["n"]}

        spec = {
            **self.model_id,
            "stage": stage,
            "recipe": recipe,
            "data": data.key,
            "init": init.key if init else None,
        }
        return self.cache.run("train", spec, build, f"({stage}, {data.info['n']} samples, seed={seed})")

    def select(self, model: Step | None, selection: dict, seed: int) -> Step:
        from .selection import SelectionArguments, run_selection

        args = SelectionArguments(**{**self.suite.selection, **selection, "seed": seed})

        def build(out: Path) -> dict:
            report = run_selection(
                model=self.suite.model_name_or_path,
                adapter=str(model.dir) if model else None,
                template=self.suite.template,
                dataset_dir=self.suite.prepare["dataset_dir"],
                name=self.suite.prepare["name"],
                args=args,
                out_path=str(out / "data.jsonl"),
                out_json=str(out / "selection.json"),
            )
            return {"n": report["picked_total"], "scored": report["scored_total"], "pool": report["pool_size"]}

        spec = {**self.model_id, "data": self.fp, "model": model.key if model else None, "arguments": asdict(args)}
        step = self.cache.run(
            "select", spec, build, f"({args.strategy}, k={args.k}, from {'base' if model is None else model.key})"
        )
        self._register(f"bench_{step.key}", step.dir / "data.jsonl", "alpaca")
        return step

    def evaluate(self, model: Step | None) -> Step:
        from .evaluation import evaluate_splits

        ev = self.suite.evaluation
        caps = {s: ev.get(s, {}) for s in ev.get("splits", [])}

        def build(out: Path) -> dict:
            metrics = evaluate_splits(
                model=self.suite.model_name_or_path,
                adapter=str(model.dir) if model else None,
                template=self.suite.template,
                data_base=self.suite.data_base,
                evaluation=ev,
                out_dir=out,
            )
            return {"metrics": {split: {k: m.get(k) for k in SUMMARY_KEYS} for split, m in metrics.items()}}

        spec = {
            **self.model_id,
            "data": self.fp,
            "model": model.key if model else None,
            "caps": caps,
            "seed": ev.get("seed", 0),
        }
        return self.cache.run("eval", spec, build, f"({'base' if model is None else model.key})")

    # ---- variants
    def run_variant(self, v: VariantConfig, seed: int, results: dict) -> dict:
        """The steps of one variant for one seed; returns its metrics and training-sample count."""
        a = {**self.suite.a_tuning, **v.a_tuning}
        steps: list[Step] = []
        model: Step | None = None
        samples = 0
        stage1: Step | None = None  # the data of the first LoRA stage, if the variant has one
        if v.kind in ("anchor_only", "behaviorlm") and not v.skip_a_tuning:
            stage1 = self.mix(a.get("anchors"), float(a.get("aux_ratio", 0.0)), seed)
        elif v.kind == "reverse":
            # The rarer behaviors (metric categories medium + tail), as many as A-Tuning's anchors.
            n = a.get("anchors") or self.stats["splits"]["samples_written"]["train_anchor"]
            stage1 = self.subset("train_all", n, seed, categories=("medium", "tail"))
        elif v.kind == "full_ft":
            n = v.train_samples
            if n == "matched":
                ours = results.get(self.suite.ours, {}).get(seed)
                if ours is None:
                    raise BenchError(f"variant {v.name!r}: 'matched' needs {self.suite.ours!r} to run first")
                n = ours["train_samples"]
            stage1 = self.subset("train_all", int(n), seed)
        if stage1 is not None:
            model = self.train("a_tuning", stage1, None, seed)
            steps += [stage1, model]
            samples += stage1.info["n"]
        if v.kind in ("behaviorlm", "reverse"):
            picked = self.select(model, v.selection, seed)
            model = self.train("b_tuning", picked, model, seed)
            steps += [picked, model]
            samples += picked.info["n"]
        ev = self.evaluate(model)
        steps.append(ev)
        return {
            "metrics": ev.info["metrics"],
            "train_samples": samples,
            "steps": [{"kind": s.kind, "key": s.key, "seconds": s.seconds, "cached": s.cached} for s in steps],
        }

    def _variant_order(self) -> list[VariantConfig]:
        chosen = [v for v in self.suite.variants if not self.only or v.name in self.only]
        if self.only and any(v.train_samples == "matched" for v in chosen) and self.suite.ours not in self.only:
            chosen.insert(0, self.suite.variant(self.suite.ours))
        # 'matched' full fine-tuning needs ours first; otherwise keep the suite's order.
        return sorted(chosen, key=lambda v: (v.train_samples == "matched", v.name != self.suite.ours))

    def run(self) -> dict:
        from tqdm.auto import tqdm

        from .config import PrepareArguments
        from .prepare import ensure_prepared

        t0 = time.time()
        ensure_prepared(PrepareArguments(**{**self.suite.prepare, "overwrite": True}), self.log)
        self.fp = data_fingerprint(self.suite.data_base)
        self.stats = json.loads((self.suite.data_base / "stats.json").read_text())
        self._register("bench_val", self.suite.data_base / "val.jsonl", "alpaca")
        results: dict[str, dict[int, dict]] = {}
        order = self._variant_order()
        bar = tqdm(total=sum(len(self.suite.seeds_of(v)) for v in order), desc="bench", unit="run")
        for seed in self.suite.seeds:
            for v in order:
                if seed not in self.suite.seeds_of(v):
                    continue
                bar.set_postfix_str(f"{v.name} / seed {seed}")
                results.setdefault(v.name, {})[seed] = self.run_variant(v, seed, results)
                bar.update()
                # A readable snapshot after every run: long suites can be inspected (or salvaged) midway.
                partial = assemble_results(self.suite, results, None, self.cache.ran, time.time() - t0)
                Path(self.suite.out_dir).mkdir(parents=True, exist_ok=True)
                atomic_write_json(Path(self.suite.out_dir) / "results.json", {**partial, "complete": False})
        bar.close()
        sasrec = self.run_sasrec() if self.suite.sasrec.enabled else None
        out = {**assemble_results(self.suite, results, sasrec, self.cache.ran, time.time() - t0), "complete": True}
        write_outputs(self.suite, out)
        return out

    # ---- SASRec
    def run_sasrec(self) -> dict:
        cfg = self.suite.sasrec
        per_seed = {}
        for seed in self.suite.seeds:
            best = self._sasrec_step(seed, None, cfg.grid, cfg.config)
            curve = {}
            for n in cfg.train_sizes:
                step = self._sasrec_step(seed, n, None, best.info["search"]["best_config"])
                curve[n] = step.info
            per_seed[seed] = {"full": best.info, "curve": curve}
        return per_seed

    def _sasrec_step(self, seed: int, train_size: int | None, grid: dict | None, config: dict) -> Step:
        from .evaluation import evaluate_predictions, load_split
        from .sasrec import SASRecConfig, run_sasrec

        base = {**config, "seed": seed, "device": config.get("device", "cpu")}
        ev = self.suite.evaluation
        caps = {s: ev.get(s, {}) for s in ev.get("splits", [])}

        def build(out: Path) -> dict:
            res = run_sasrec(
                self.suite.prepare["dataset_dir"],
                self.suite.prepare["name"],
                str(out),
                base=SASRecConfig(**base),
                grid=grid or {"lr": [base.get("lr", SASRecConfig.lr)]},  # one trial: the given config
                train_size=train_size,
                splits=tuple(caps),
                subset_seed=seed,
            )
            subset = {}
            for split, lim in caps.items():
                _, metas = load_split(
                    self.suite.data_base / f"{split}.jsonl",
                    max_samples=lim.get("max_samples"),
                    max_per_class=lim.get("max_per_class"),
                    seed=ev.get("seed", 0),
                )
                ids = {m["id"] for m in metas}
                rows = [r for r in read_jsonl(out / split / "preds.jsonl") if r["id"] in ids]
                m = evaluate_predictions(rows, self.suite.data_base / "stats.json")
                subset[split] = {k: m.get(k) for k in SUMMARY_KEYS}
            search = {k: res["search"][k] for k in ("trials", "best_config", "best_val_acc")}
            return {
                "metrics": subset,
                "metrics_full_split": res["metrics"],
                "train_size": res["train_size"],
                "search": search,
            }

        spec = {
            "data": self.fp,
            "train_size": train_size,
            "grid": grid,
            "config": base,
            "caps": caps,
            "eval_seed": ev.get("seed", 0),
        }
        return self.cache.run("sasrec", spec, build, f"(train_size={train_size or 'all'}, seed={seed})")


# ----------------------------------------------------------------------------- results
def _columns(metrics: dict) -> dict[str, float | None]:
    """The six paper columns from one evaluation (each from its split, else whichever split exists)."""
    out = {}
    for col, split, key in COLUMNS:
        src = metrics.get(split) or next(iter(metrics.values()), {})
        value = src.get(key)
        out[col] = float(value) if isinstance(value, int | float) else None
    return out


def summarize(per_seed: dict[int, dict]) -> dict:
    cols = [_columns(r["metrics"]) for r in per_seed.values()]
    mean, std = {}, {}
    for col, _, _ in COLUMNS:
        vals = [c[col] for c in cols if c[col] is not None]
        mean[col] = float(np.mean(vals)) if vals else None
        std[col] = float(np.std(vals, ddof=1)) if len(vals) > 1 else (0.0 if vals else None)
    return {"mean": mean, "std": std, "seeds": len(cols)}


def verdict(ours: dict, best: dict, col: str) -> str:
    """'win' / 'loss' only when the gap is larger than the two seed spreads together."""
    a, b = ours["mean"][col], best["mean"][col]
    if a is None or b is None:
        return "n/a"
    if ours["seeds"] < 2 or best["seeds"] < 2:
        return "1 seed: no verdict"
    noise = (ours["std"][col] or 0.0) + (best["std"][col] or 0.0)
    if abs(a - b) <= noise:
        return "within noise"
    return "win" if a > b else "loss"


def machine_info() -> dict:
    import os

    info = {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count()}
    for mod in ("torch", "transformers", "peft", "llamafactory", "trl", "datasets"):
        try:
            info[mod] = __import__(mod).__version__
        except Exception:
            info[mod] = None
    try:
        import torch

        info["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
        info["torch_threads"] = torch.get_num_threads()
    except Exception:
        info["gpu"] = None
    return info


def assemble_results(suite: SuiteConfig, results: dict, sasrec: dict | None, steps: list[Step], wall: float) -> dict:
    variants = {}
    for v in suite.variants:
        if v.name not in results:
            continue
        per_seed = results[v.name]
        variants[v.name] = {
            "kind": v.kind,
            "group": v.group,
            "description": v.description,
            "config": {k: val for k, val in asdict(v).items() if k not in ("name", "description")},
            "per_seed": {str(s): r for s, r in per_seed.items()},
            "train_samples": float(np.mean([r["train_samples"] for r in per_seed.values()])),
            **summarize(per_seed),
        }
    if sasrec:
        full = {s: {"metrics": r["full"]["metrics"]} for s, r in sasrec.items()}
        variants["SASRec"] = {
            "kind": "sasrec",
            "group": "baseline",
            "description": "transformer next-behavior classifier on the same windows (searched lr × size)",
            "per_seed": {str(s): {**r["full"], "train_samples": r["full"]["train_size"]} for s, r in sasrec.items()},
            "train_samples": float(np.mean([r["full"]["train_size"] for r in sasrec.values()])),
            **summarize(full),
        }
    by_kind: dict[str, dict] = {}
    for s in steps:
        d = by_kind.setdefault(s.kind, {"runs": 0, "cache_hits": 0, "seconds_run": 0.0, "seconds_saved": 0.0})
        d["cache_hits" if s.cached else "runs"] += 1
        d["seconds_saved" if s.cached else "seconds_run"] += s.seconds
    return {
        "suite": suite.name,
        "ours": suite.ours,
        "seeds": suite.seeds,
        "model": suite.model_name_or_path,
        "template": suite.template,
        "data": {"dataset_dir": suite.prepare["dataset_dir"], "name": suite.prepare["name"]},
        "evaluation": suite.evaluation,
        "machine": machine_info(),
        "wall_seconds": round(wall, 1),
        "steps": by_kind,
        "variants": variants,
        "sasrec_curve": _sasrec_curve(sasrec) if sasrec else {},
        "sasrec_search": {str(s): r["full"]["search"] for s, r in sasrec.items()} if sasrec else {},
    }


def _sasrec_curve(sasrec: dict) -> dict:
    sizes = sorted({int(n) for r in sasrec.values() for n in r["curve"]})
    out = {}
    for n in sizes:
        out[str(n)] = summarize(
            {s: {"metrics": r["curve"][n]["metrics"]} for s, r in sasrec.items() if n in r["curve"]}
        )
    return out


# ----------------------------------------------------------------------------- report
def _cell(summary: dict, col: str) -> str:
    m, s = summary["mean"].get(col), summary["std"].get(col)
    if m is None:
        return "n/a"
    return f"{m:.3f} ± {s:.3f}" if summary["seeds"] > 1 else f"{m:.3f}"


def best_baseline(results: dict, col: str) -> str | None:
    rows = [(n, v) for n, v in results["variants"].items() if v["group"] == "baseline" and v["mean"][col] is not None]
    return max(rows, key=lambda r: r[1]["mean"][col])[0] if rows else None


def report_markdown(results: dict) -> str:
    cols = [c for c, _, _ in COLUMNS]
    variants = results["variants"]
    ours_name = results["ours"]
    empty = {"mean": dict.fromkeys(cols), "std": dict.fromkeys(cols), "seeds": 0}
    ours = variants.get(ours_name, empty)  # absent only in a partial (still running) results.json
    m = results["machine"]
    lines = [
        f"# Benchmark `{results['suite']}`",
        "",
        f"Model `{results['model']}` (template `{results['template']}`), data "
        f"`{results['data']['dataset_dir']}/{results['data']['name']}`, seeds {results['seeds']}. "
        f"wP and wR are on `test`, the class means on `test_balanced` (caps: {_caps_text(results['evaluation'])}).",
        "",
        f"Machine: {m['platform']}, {m['cpus']} CPUs, GPU {m.get('gpu') or 'none'}; Python {m['python']}, torch "
        f"{m['torch']}, transformers {m['transformers']}, peft {m['peft']}, llamafactory {m['llamafactory']}. "
        f"Wall time {results['wall_seconds'] / 60:.1f} min."
        + ("" if results.get("complete", True) else " **Partial results: the run has not finished.**"),
        "",
        "## Main table (mean ± std over seeds)",
        "",
        "| variant | seeds | train samples | " + " | ".join(cols) + " |",
        "|---|---|---|" + "---|" * len(cols),
    ]
    main = [n for n, v in variants.items() if v["group"] in ("baseline", "ours")]
    for n in main:
        v = variants[n]
        name = f"**{n}**" if n == ours_name else n
        lines.append(
            f"| {name} | {v['seeds']} | {v['train_samples']:.0f} | " + " | ".join(_cell(v, c) for c in cols) + " |"
        )
    best = {c: best_baseline(results, c) for c in cols}
    lines.append("| best baseline | | | " + " | ".join(best[c] or "n/a" for c in cols) + " |")
    rel = []
    for c in cols:
        b = best[c]
        if b is None or ours["mean"][c] is None or not variants[b]["mean"][c]:
            rel.append("n/a")
            continue
        gain = (ours["mean"][c] - variants[b]["mean"][c]) / variants[b]["mean"][c]
        rel.append(f"{gain:+.1%} ({verdict(ours, variants[b], c)})")
    lines.append(f"| {ours_name} vs best baseline | | | " + " | ".join(rel) + " |")
    lines += [
        "",
        "A difference counts as a win or loss only when it is larger than the two rows' seed standard deviations "
        "added together; otherwise it is *within noise*.",
        "",
    ]
    ablations = [n for n, v in variants.items() if v["group"] == "ablation"]
    if ablations:
        lines += [
            "## Ablations (Δ against " + ours_name + ", in points)",
            "",
            "| variant | " + " | ".join(cols) + " |",
            "|---|" + "---|" * len(cols),
            f"| {ours_name} | " + " | ".join(_cell(ours, c) for c in cols) + " |",
        ]
        for n in ablations:
            v = variants[n]
            cells = []
            for c in cols:
                if v["mean"][c] is None or ours["mean"][c] is None:
                    cells.append("n/a")
                else:
                    cells.append(f"{_cell(v, c)} ({100 * (v['mean'][c] - ours['mean'][c]):+.1f})")
            lines.append(f"| {n} | " + " | ".join(cells) + " |")
        lines.append("")
    for prefix, title, plot in (("λ=", "Aux ratio λ sweep", "lambda_sweep.png"), ("k=", "k sweep", "k_sweep.png")):
        rows = [n for n in variants if n.startswith(prefix)]
        if rows:
            lines += [
                f"## {title}",
                "",
                "| variant | train samples | " + " | ".join(cols) + " |",
                "|---|---|" + "---|" * len(cols),
            ]
            for n in rows:
                v = variants[n]
                lines.append(f"| {n} | {v['train_samples']:.0f} | " + " | ".join(_cell(v, c) for c in cols) + " |")
            lines += ["", f"![{title}]({plot})", ""]
    if results.get("sasrec_search"):
        first = next(iter(results["sasrec_search"].values()))
        lines += [
            "## SASRec search (seed " + next(iter(results["sasrec_search"])) + ")",
            "",
            "| " + " | ".join(k for k in first["trials"][0] if k not in ("seconds",)) + " |",
            "|" + "---|" * (len(first["trials"][0]) - 1),
        ]
        for t in first["trials"]:
            lines.append("| " + " | ".join(_fmt(v) for k, v in t.items() if k != "seconds") + " |")
        lines += ["", f"Best: `{json.dumps({k: first['best_config'][k] for k in ('lr', 'd_model', 'pre_ln')})}`.", ""]
    if results.get("sasrec_curve"):
        lines += ["## Sample efficiency", "", "| model | train samples | wR | tail |", "|---|---|---|---|"]
        for series, pts in efficiency_curves(results).items():
            for n, summary in pts:
                lines.append(f"| {series} | {n:.0f} | {_cell(summary, 'wR')} | {_cell(summary, 'tail')} |")
        lines += ["", "![sample efficiency](sample_efficiency.png)", ""]
    lines += [
        "## Tail against head",
        "",
        "![tail vs head](tail_vs_head.png)",
        "",
        "## Steps",
        "",
        "| step | runs | cache hits | seconds run | seconds saved by the cache |",
        "|---|---|---|---|---|",
    ]
    for k, d in results["steps"].items():
        lines.append(f"| {k} | {d['runs']} | {d['cache_hits']} | {d['seconds_run']:.0f} | {d['seconds_saved']:.0f} |")
    return "\n".join(lines) + "\n"


def efficiency_curves(results: dict) -> dict[str, list[tuple[float, dict]]]:
    """Sample-efficiency series: SASRec's train-size curve (plus its full-size row), BehaviorLM's k sweep
    (with the ``ours`` row) and the full fine-tuning rows; each a list of (train samples, summary)."""
    variants, ours = results["variants"], results["ours"]
    sasrec = [(float(n), s) for n, s in results.get("sasrec_curve", {}).items()]
    if "SASRec" in variants:
        sasrec.append((variants["SASRec"]["train_samples"], variants["SASRec"]))
    blm = [(variants[ours]["train_samples"], variants[ours])] if ours in variants else []
    for n, v in variants.items():  # k rows; the one equal to ours (same sample count) is ours itself
        if n.startswith("k=") and all(v["train_samples"] != x for x, _ in blm):
            blm.append((v["train_samples"], v))
    fft = [(v["train_samples"], v) for v in variants.values() if v["kind"] == "full_ft"]
    out = {"SASRec": sasrec, "BehaviorLM (k sweep)": blm, "full fine-tuning": fft}
    return {k: sorted(pts, key=lambda p: p[0]) for k, pts in out.items() if pts}


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _caps_text(ev: dict) -> str:
    parts = [f"{s}: {', '.join(f'{k}={v}' for k, v in ev.get(s, {}).items()) or 'all'}" for s in ev.get("splits", [])]
    return "; ".join(parts)


def write_plots(results: dict, out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    variants, written = results["variants"], []

    def save(fig, name: str) -> None:
        fig.tight_layout()
        fig.savefig(out / name, dpi=120)
        plt.close(fig)
        written.append(name)

    fig, ax = plt.subplots(figsize=(7, 6))
    labels: dict[tuple[float, float], list[str]] = {}
    for name, v in variants.items():
        h, t = v["mean"].get("head"), v["mean"].get("tail")
        if h is None or t is None:
            continue
        marker = {"ours": "*", "baseline": "o", "ablation": "s", "sweep": "."}[v["group"]]
        ax.errorbar(
            h,
            t,
            xerr=v["std"]["head"] or 0,
            yerr=v["std"]["tail"] or 0,
            fmt=marker,
            capsize=3,
            markersize=12 if v["group"] == "ours" else 6,
        )
        labels.setdefault((round(h, 4), round(t, 4)), []).append(name)
    for (h, t), names in labels.items():  # rows on the same point share one label instead of overprinting
        ax.annotate("\n".join(names), (h, t), fontsize=7, xytext=(4, 3), textcoords="offset points", va="bottom")
    ax.set_xlabel("head accuracy (test_balanced)")
    ax.set_ylabel("tail accuracy (test_balanced)")
    ax.set_title("Tail vs head accuracy (mean ± std over seeds)")
    save(fig, "tail_vs_head.png")

    for prefix, xlabel, name in (("λ=", "aux ratio λ", "lambda_sweep.png"), ("k=", "k per behavior", "k_sweep.png")):
        rows = sorted(
            ((float(n[len(prefix) :]), v) for n, v in variants.items() if n.startswith(prefix)), key=lambda r: r[0]
        )
        if not rows:
            continue
        fig, ax = plt.subplots(figsize=(6, 4))
        xs = [r[0] for r in rows]
        for col in ("wR", "Acc_avg", "head", "tail"):
            ys = [r[1]["mean"][col] for r in rows]
            if any(y is None for y in ys):
                continue
            ax.errorbar(xs, ys, yerr=[r[1]["std"][col] or 0 for r in rows], marker="o", capsize=3, label=col)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("accuracy")
        ax.legend()
        save(fig, name)

    if results.get("sasrec_curve"):
        fig, axes = plt.subplots(1, 2, figsize=(11, 4))
        curves = efficiency_curves(results)
        for ax, col in zip(axes, ("wR", "tail"), strict=True):
            for series, pts in curves.items():
                pts = [(n, p) for n, p in pts if p["mean"][col] is not None]
                ax.errorbar(
                    [n for n, _ in pts],
                    [p["mean"][col] for _, p in pts],
                    yerr=[p["std"][col] or 0 for _, p in pts],
                    marker="o" if series == "SASRec" else "s",
                    linestyle="-" if series == "SASRec" else "--",
                    capsize=3,
                    label=series,
                )
            ax.set_xscale("log")
            ax.set_xlabel("training samples")
            ax.set_ylabel(f"{col} accuracy")
            ax.set_title(col)
            ax.legend(fontsize=8)
        save(fig, "sample_efficiency.png")
    return written


def terminal_table(results: dict) -> str:
    from .metrics import format_table

    rows = {n: {c: v["mean"][c] for c, _, _ in COLUMNS} for n, v in results["variants"].items()}
    return format_table(rows, columns=[c for c, _, _ in COLUMNS])


def write_outputs(suite: SuiteConfig, results: dict) -> Path:
    out = Path(suite.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "results.json", results)
    write_plots(results, out)
    atomic_write_text(out / "report.md", report_markdown(results))
    return out


def rerender(out_dir: str | Path) -> Path:
    """Rebuild report.md and plots from an existing results.json (no model runs)."""
    out = Path(out_dir)
    results = json.loads((out / "results.json").read_text())
    write_plots(results, out)
    atomic_write_text(out / "report.md", report_markdown(results))
    return out


__all__ = [
    "BenchError",
    "BenchRunner",
    "StepCache",
    "SuiteConfig",
    "VariantConfig",
    "load_suite",
    "report_markdown",
]
