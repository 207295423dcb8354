"""``behaviorlm bench suite.yaml``: BehaviorLM against its baselines and ablations, over seeds.

A suite lists *variants* built from a handful of cached *steps*:

    mix      anchor samples + λ auxiliary conversations (the A-Tuning data; ``data.aux_data``)
    subset   a seeded random subset of a prepared split (full fine-tuning, reverse curriculum)
    train    one LoRA stage through ``tuning.lora_stage``, optionally continuing an earlier adapter
    select   DDS/CDS (or any registered strategy) scored by a stage-1 model (``tuning.select_run``)
    eval     candidate scoring on the capped evaluation splits + metrics (``eval.evaluate``)
    sasrec   the SASRec baseline (``runs.bench.sasrec_steps``)

What each variant kind chains is in :mod:`behaviorlm_plugin.runs.bench.variants`; the step cache
in :mod:`behaviorlm_plugin.runs.bench.cache`.  The bench's training datasets live in its own
``cache_dir/datasets/dataset_info.json``; the user's registry is never touched.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from behaviorlm_plugin.data.dataset import PreparedDataset
from behaviorlm_plugin.data.registry import make_entry, register_datasets
from behaviorlm_plugin.eval.metrics import SUMMARY_KEYS
from behaviorlm_plugin.extras.constants import AUX_SPLIT
from behaviorlm_plugin.extras.fileio import atomic_write_json, atomic_write_jsonl, read_jsonl
from behaviorlm_plugin.hparams.bench_args import PartConfig, SuiteConfig, VariantConfig
from behaviorlm_plugin.hparams.parser import ConfigError, load_config
from behaviorlm_plugin.hparams.selection_args import SelectionArguments
from behaviorlm_plugin.runs.bench.cache import Step, StepCache, data_fingerprint
from behaviorlm_plugin.runs.bench.results import assemble_results
from behaviorlm_plugin.runs.bench.variants import get_variant_kind
from behaviorlm_plugin.tuning.launcher import TrainJob, train_args

BenchError = ConfigError
"""A bad suite file or a request the data cannot meet; the message names the key and the fix."""

VAL_DATASET = "bench_val"


def load_suite(path: str | Path, sets: list[str] | None = None) -> SuiteConfig:
    """A ``suite.yaml`` with ``--set`` items on top (see :mod:`behaviorlm_plugin.hparams.parser`)."""
    return load_config(SuiteConfig, path, sets)


class BenchRunner:
    """Runs a suite: every variant for every seed, through the step cache."""

    def __init__(
        self,
        suite: SuiteConfig,
        *,
        log: Callable[[str], None] = print,
        only: list[str] | None = None,
        part: PartConfig | None = None,
    ):
        self.suite = suite
        self.part = part
        if part is not None:
            only = list(part.variants)
        self.searched_lr: dict[str, float] = {}  # lr_search winners by target (full_ft, a_tuning)
        self.log = log
        self.cache = StepCache(suite.cache_dir, log)
        self.datasets_dir = Path(suite.cache_dir) / "datasets"
        self.data = PreparedDataset(suite.prepare.dataset_dir, suite.prepare.name)
        self.only = only
        if only is not None:
            missing = sorted(set(only) - {v.name for v in suite.variants})
            if missing:
                raise BenchError(f"--only: unknown variant(s) {missing}")
        self.fp = ""  # data fingerprint: set by run() once the data is prepared
        self.model_id = {"model": suite.model_name_or_path, "template": suite.template}

    # ---- steps
    def _register(self, name: str, path: Path, formatting: str) -> None:
        register_datasets(
            dataset_dir=self.datasets_dir, entries={name: make_entry(str(path.absolute()), formatting)}, overwrite=True
        )

    def mix(self, anchors: int | None, aux_ratio: float, seed: int) -> Step:
        from behaviorlm_plugin.data.aux_data import build_atuning_mix

        def build(out: Path) -> dict:
            rows, info = build_atuning_mix(
                read_jsonl(self.data.path("train_anchor")),
                read_jsonl(self.data.path(AUX_SPLIT)),
                aux_ratio=aux_ratio,
                anchors=anchors,
                seed=seed,
            )
            atomic_write_jsonl(out / "data.jsonl", rows)
            return info

        spec = {"data": self.fp, "anchors": anchors, "aux_ratio": aux_ratio, "seed": seed}
        step = self.cache.run("mix", spec, build, f"(anchors={anchors}, λ={aux_ratio}, seed={seed})")
        self._register(f"bench_{step.key}", step.dir / "data.jsonl", "sharegpt")
        return step

    def subset(self, split: str, n: int, seed: int, categories: tuple[str, ...] | None = None) -> Step:
        """``n`` random samples of a split; with ``categories``, only samples whose label is in those
        head/medium/tail categories, and all of them when fewer than ``n`` exist."""

        def build(out: Path) -> dict:
            recs = read_jsonl(self.data.path(split))
            if categories is not None:
                metas = read_jsonl(self.data.meta_path(split))
                recs = [r for r, m in zip(recs, metas, strict=True) if m["head_medium_tail"] in categories]
                if not recs:
                    raise BenchError(f"{self.data.path(split)} has no samples labelled {'/'.join(categories)}")
            elif n > len(recs):
                raise BenchError(f"{self.data.path(split)} has {len(recs)} samples, fewer than the {n} asked for")
            k = min(n, len(recs))
            idx = np.random.default_rng([seed, 2]).choice(len(recs), k, replace=False)
            atomic_write_jsonl(out / "data.jsonl", [recs[i] for i in idx])
            return {"n": k, "available": len(recs)}

        spec = {"data": self.fp, "split": split, "n": n, "seed": seed}
        if categories is not None:
            spec["categories"] = list(categories)
        label = f"({split}, n={n}{', ' + '+'.join(categories) if categories else ''})"
        step = self.cache.run("subset", spec, build, label)
        self._register(f"bench_{step.key}", step.dir / "data.jsonl", "alpaca")
        return step

    def train_job(self, stage: str, dataset: str, output_dir: str, init: str | None, seed: int) -> TrainJob:
        return TrainJob(
            stage=stage,
            model_name_or_path=self.suite.model_name_or_path,
            template=self.suite.template,
            dataset_dir=str(self.datasets_dir),
            dataset=dataset,
            output_dir=output_dir,
            init_adapter=init,
            eval_dataset=VAL_DATASET,
            seed=seed,
        )

    def train_config(
        self, stage: str, dataset: str, output_dir: str, init: str | None, seed: int, lr: float | None = None
    ) -> dict:
        job = self.train_job(stage, dataset, output_dir, init, seed)
        overrides = {**self.suite.overrides.of(stage), **({"learning_rate": lr} if lr is not None else {})}
        cfg = train_args(self.suite.recipe_path(stage), overrides, job)
        if str(cfg.get("eval_strategy", "no")) != "no" and "eval_dataset" not in cfg:
            cfg["eval_dataset"] = job.eval_dataset  # evaluation per epoch (the best epoch on val) reads val
        return cfg

    def train(self, stage: str, data: Step, init: Step | None, seed: int, lr: float | None = None) -> Step:
        """One LoRA stage; ``lr`` (an lr_search winner or trial) replaces the recipe's learning rate."""
        from behaviorlm_plugin.tuning.lora_stage import train_stage

        def config(out: str) -> dict:
            return self.train_config(stage, f"bench_{data.key}", out, str(init.dir) if init else None, seed, lr)

        def build(out: Path) -> dict:
            info = train_stage(config(str(out)), out / "train.yaml", clean=False)
            return {"launcher": info["launcher"], "samples": data.info["n"]}

        # The key holds the arguments with placeholder paths: the cache never depends on where it lives.
        recipe = config("<step dir>")
        for k in ("output_dir", "dataset_dir", "dataset", "adapter_name_or_path", "eval_dataset"):
            recipe.pop(k, None)
        spec = {**self.model_id, "stage": stage, "recipe": recipe, "data": data.key, "init": init.key if init else None}
        return self.cache.run("train", spec, build, f"({stage}, {data.info['n']} samples, seed={seed})")

    def select(self, model: Step | None, selection: SelectionArguments, seed: int) -> Step:
        from behaviorlm_plugin.tuning.select_run import run_selection

        args = replace(selection, seed=seed)

        def build(out: Path) -> dict:
            report = run_selection(
                model=self.suite.model_name_or_path,
                adapter=str(model.dir) if model else None,
                template=self.suite.template,
                dataset_dir=str(self.data.dataset_dir),
                name=self.data.name,
                args=args,
                out_path=str(out / "data.jsonl"),
                out_json=str(out / "selection.json"),
            )
            return {"n": report["picked_total"], "scored": report["scored_total"], "pool": report["pool_size"]}

        spec = {**self.model_id, "data": self.fp, "model": model.key if model else None, "arguments": asdict(args)}
        label = f"({args.strategy}, k={args.k}, from {'base' if model is None else model.key})"
        step = self.cache.run("select", spec, build, label)
        self._register(f"bench_{step.key}", step.dir / "data.jsonl", "alpaca")
        return step

    def evaluate(self, model: Step | None) -> Step:
        from behaviorlm_plugin.eval.evaluate import evaluate_splits

        ev = self.suite.evaluation

        def build(out: Path) -> dict:
            metrics = evaluate_splits(
                model=self.suite.model_name_or_path,
                adapter=str(model.dir) if model else None,
                template=self.suite.template,
                data=self.data,
                evaluation=replace(ev, prior_correction=0.0),  # the plain scores; a row's alpha re-ranks them
                out_dir=out,
            )
            return {"metrics": {split: {k: m.get(k) for k in SUMMARY_KEYS} for split, m in metrics.items()}}

        spec = {
            **self.model_id,
            "data": self.fp,
            "model": model.key if model else None,
            "caps": ev.caps(),
            "seed": ev.seed,
        }
        return self.cache.run("eval", spec, build, f"({'base' if model is None else model.key})")

    # ---- variants
    def run_variant(self, v: VariantConfig, seed: int, results: dict) -> dict:
        """The steps of one variant for one seed; returns its metrics, training-sample count, alpha and the
        per-sample predictions (for the paired bootstrap)."""
        from behaviorlm_plugin.runs.bench.adjust import adjust_step, sample_predictions

        kind = get_variant_kind(v.kind)
        steps: list[Step] = []
        samples = 0
        if kind.evaluator is not None:
            ev = kind.evaluator(self)
        else:
            ev, samples = self._trained_eval(kind, v, seed, results, steps)
        steps.append(ev)
        if v.prior_correction != 0:
            ev = adjust_step(self, ev, v.prior_correction)
            steps.append(ev)
        return {
            "metrics": ev.info["metrics"],
            "train_samples": samples,
            "alpha": ev.info.get("alpha", 0.0),
            **({"alpha_choice": ev.info["alpha_choice"]} if "alpha_choice" in ev.info else {}),
            "predictions": sample_predictions(self, ev.dir),
            "steps": [s.summary() for s in steps],
        }

    def _trained_eval(self, kind, v: VariantConfig, seed: int, results: dict, steps: list[Step]) -> tuple[Step, int]:
        model: Step | None = None
        samples = 0
        stage1 = kind.stage1(self, v, seed, results)
        if stage1 is not None:
            lr = self.searched_lr.get("full_ft" if v.kind == "full_ft" else "a_tuning")
            model = self.train("a_tuning", stage1, None, seed, lr=lr)
            steps += [stage1, model]
            samples += stage1.info["n"]
        if kind.b_tuning:
            picked = self.select(model, v.selection, seed)
            model = self.train("b_tuning", picked, model, seed)
            steps += [picked, model]
            samples += picked.info["n"]
        return self.evaluate(model), samples

    def matched_samples(self, seed: int, results: dict) -> int:
        """How many samples ``ours`` trained on at ``seed`` (its two stages): from this run, else from an earlier
        part's file, else by running ``ours`` now."""
        from behaviorlm_plugin.runs.bench.parts import earlier_train_samples

        ours = self.suite.ours
        if seed not in results.get(ours, {}):
            earlier = earlier_train_samples(self.suite, ours, seed)
            if earlier is not None:
                return earlier
            results.setdefault(ours, {})[seed] = self.run_variant(self.suite.variant(ours), seed, results)
        return results[ours][seed]["train_samples"]

    def _variant_order(self) -> list[VariantConfig]:
        chosen = [v for v in self.suite.variants if self.only is None or v.name in self.only]
        if (
            self.only is not None
            and self.part is None  # a part takes ours' count from an earlier part's file (matched_samples)
            and any(v.train_samples == "matched" for v in chosen)
            and self.suite.ours not in self.only
        ):
            chosen.insert(0, self.suite.variant(self.suite.ours))
        # 'matched' full fine-tuning needs ours first; otherwise keep the suite's order.
        matched = any(v.train_samples == "matched" for v in chosen)
        return sorted(chosen, key=lambda v: (v.train_samples == "matched", matched and v.name != self.suite.ours))

    def _prepare(self) -> None:
        from behaviorlm_plugin.data.prepare import ensure_prepared
        from behaviorlm_plugin.model.paths import check_model_path

        check_model_path(self.suite.model_name_or_path, what="model_name_or_path")

        ensure_prepared(self.suite.prepare, self.log)
        self.fp = data_fingerprint(self.data)
        self._register(VAL_DATASET, self.data.path("val"), "alpaca")

    def run(self) -> dict:
        from tqdm.auto import tqdm

        from behaviorlm_plugin.runs.bench.evidence import bootstrap_table, collect_evidence
        from behaviorlm_plugin.runs.bench.lr_search import run_lr_search
        from behaviorlm_plugin.runs.bench.parts import part_path
        from behaviorlm_plugin.runs.bench.report import write_outputs
        from behaviorlm_plugin.runs.bench.sasrec_steps import run_sasrec_steps

        t0 = time.time()
        self._prepare()
        results: dict[str, dict[int, dict]] = {}
        search = run_lr_search(self, results) if self.suite.lr_search else None
        order = self._variant_order()
        out = part_path(self.suite, self.part.name) if self.part else Path(self.suite.out_dir) / "results.json"
        extra = {"lr_search": search} if search else {}

        def snapshot(sasrec=None, evidence=None) -> dict:
            return {
                **assemble_results(self.suite, results, sasrec, self.cache.ran, time.time() - t0, evidence),
                **extra,
            }

        seeds = self.part.seeds if self.part and self.part.seeds else self.suite.seeds
        total = sum(len(set(self.suite.seeds_of(v)) & set(seeds)) for v in order)
        with tqdm(total=total, desc="bench", unit="run") as bar:
            for seed in seeds:
                for v in (v for v in order if seed in self.suite.seeds_of(v)):
                    bar.set_postfix_str(f"{v.name} / seed {seed}")
                    if seed not in results.get(v.name, {}):  # the lr search may have run ours already
                        results.setdefault(v.name, {})[seed] = self.run_variant(v, seed, results)
                    bar.update()
                    # A readable snapshot after every run, with its evidence (samples, frontier, bootstrap so far):
                    # long suites can be inspected, or salvaged and rendered with --report-only, midway.
                    partial = snapshot(evidence=collect_evidence(self, results))
                    out.parent.mkdir(parents=True, exist_ok=True)
                    atomic_write_json(out, {**partial, "bootstrap": bootstrap_table(partial), "complete": False})
        run_sasrec = self.suite.sasrec.enabled and (self.part.sasrec if self.part else True)
        sasrec = run_sasrec_steps(self) if run_sasrec else None
        final = snapshot(sasrec, collect_evidence(self, results))
        final = {**final, "bootstrap": bootstrap_table(final), "complete": True}
        if self.part:
            atomic_write_json(out, {**final, "part": self.part.name})
        else:
            write_outputs(self.suite.out_dir, final)
        return final
