"""``behaviorlm bench suite.yaml``: BehaviorLM against its baselines and ablations, over seeds.

A suite lists *variants* built from the step layer's steps under the bench's step cache
(:mod:`behaviorlm_plugin.runs.bench.cached_steps`): mix, subset, train, select, evaluate, and the model-free
rows (:mod:`behaviorlm_plugin.runs.bench.model_free`) and SASRec (:mod:`behaviorlm_plugin.runs.bench.sasrec_steps`).
What each variant kind chains is in :mod:`behaviorlm_plugin.runs.bench.variants`. The runner owns the loop
over seeds and variants and the results so far; the steps and helpers read a
:class:`~behaviorlm_plugin.runs.bench.context.BenchContext` and plain values, never the runner.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from filelock import Timeout
from tqdm.auto import tqdm

from behaviorlm_plugin.data.prepare import ensure_prepared
from behaviorlm_plugin.extras.fileio import atomic_write_json
from behaviorlm_plugin.hparams.bench_args import SuiteConfig, VariantConfig
from behaviorlm_plugin.hparams.bench_plan_args import PartConfig
from behaviorlm_plugin.hparams.parser import ConfigError, load_config
from behaviorlm_plugin.hparams.selection_args import SelectionArguments
from behaviorlm_plugin.runs import steps
from behaviorlm_plugin.runs.bench import cached_steps
from behaviorlm_plugin.runs.bench.cache import Step, StepCache
from behaviorlm_plugin.runs.bench.context import BenchContext, build_context
from behaviorlm_plugin.runs.bench.evidence import bootstrap_table, collect_evidence, primary_table
from behaviorlm_plugin.runs.bench.lr_search import run_lr_search, searched_target
from behaviorlm_plugin.runs.bench.model_free import curve_predictions, prior_correction_step, sample_predictions
from behaviorlm_plugin.runs.bench.part_files import provenance, write_part
from behaviorlm_plugin.runs.bench.parts import (
    NEXT,
    claim_next,
    earlier_train_samples,
    merge_parts,
    part_lock,
    part_path,
    resolve_parts,
)
from behaviorlm_plugin.runs.bench.report import write_outputs
from behaviorlm_plugin.runs.bench.results import assemble_results
from behaviorlm_plugin.runs.bench.sasrec_steps import run_sasrec_steps
from behaviorlm_plugin.runs.bench.variants import (
    Given,
    VariantKind,
    check_rows_against_data,
    check_variant_kinds,
    get_variant_kind,
)
from behaviorlm_plugin.tuning.loss_log import read_loss

BenchError = ConfigError
"""A bad suite file or a request the data cannot meet; the message names the key and the fix."""


def load_suite(path: str | Path, sets: list[str] | None = None) -> SuiteConfig:
    """A ``suite.yaml`` with ``--set`` items on top (see :mod:`behaviorlm_plugin.hparams.parser`), its
    registry names checked (variant kinds, strategies, format) so a typo fails now."""
    return check_suite(load_config(SuiteConfig, path, sets), str(path))


def check_suite(suite: SuiteConfig, where: str) -> SuiteConfig:
    """The suite's registry names (variant kinds, strategies, format), checked where they are used: now, before
    any step, with ``where`` (the file) in the message."""
    try:
        check_variant_kinds(suite.variants)
        steps.check_names(suite.prepare, _selections(suite))
    except ValueError as err:
        raise BenchError(f"{where}: {err}") from err
    return suite


def _selections(suite: SuiteConfig) -> dict[str, SelectionArguments]:
    """Each row's selection block, by where it sits in the suite (for the error a bad strategy name gets)."""
    return {f"variants[{i}] ({v.name}).selection": v.selection for i, v in enumerate(suite.variants)}


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
        self.only = only
        if only is not None:
            missing = sorted(set(only) - {v.name for v in suite.variants})
            if missing:
                raise BenchError(f"--only: unknown variant(s) {missing}")
        self.ctx: BenchContext | None = None  # set by run() once the data is prepared
        self.results: dict[str, dict[int, dict]] = {}

    # ---- variants
    def run_variant(self, v: VariantConfig, seed: int) -> dict:
        """The steps of one variant for one seed; returns its metrics, training-sample count, alpha and the
        per-sample predictions (for the paired bootstrap)."""
        ctx = self._context()
        kind = get_variant_kind(v.kind)
        chain: list[Step] = []
        samples = 0
        if kind.evaluator is not None:
            ev = kind.evaluator(ctx)
        elif kind.scorer is not None:
            ev = kind.scorer(ctx, v, seed, self.matched_samples(seed) if v.train_samples == "matched" else None)
            samples = int(ev.info["train_samples"])
        else:
            ev, samples = self._trained_eval(kind, v, seed, chain)
        chain.append(ev)
        curve = curve_predictions(ctx, ev)  # the row at every alpha, from its plain scores
        if v.prior_correction.active:
            ev = prior_correction_step(ctx, ev, v.prior_correction)
            chain.append(ev)
        return {
            "metrics": ev.info["metrics"],
            "train_samples": samples,
            # Selection reads the labels of the pool samples it scores: training data too, for a fair count.
            "labels_read": sum(int(s.info.get("scored", 0)) for s in chain if s.kind == "select"),
            "alpha": ev.info.get("alpha", 0.0),
            **({"alpha_choice": ev.info["alpha_choice"]} if "alpha_choice" in ev.info else {}),
            "predictions": sample_predictions(ctx, ev.dir),
            "curve": curve,
            "steps": [s.summary() for s in chain],
            # Each training stage's loss (A, then B): whether the LoRA moved, beside what the scores say.
            "loss": [read_loss(s.dir) for s in chain if s.kind == "train"],
        }

    def _trained_eval(self, kind: VariantKind, v: VariantConfig, seed: int, chain: list[Step]) -> tuple[Step, int]:
        model, samples, trained = self._trained_model(kind, v, seed)
        chain += trained
        return cached_steps.evaluate(self._context(), model), samples

    def _trained_model(self, kind: VariantKind, v: VariantConfig, seed: int) -> tuple[Step | None, int, list[Step]]:
        """The model a trained row evaluates (``None``: the base model), its training-sample count and its steps."""
        ctx = self._context()
        model: Step | None = None
        samples = 0
        chain: list[Step] = []
        matched = self.matched_samples(seed) if v.train_samples == "matched" else None
        stage1 = kind.stage1(ctx, v, seed, Given(matched=matched, learning_rates=dict(self.searched_lr)))
        if stage1 is not None:
            lr = self.searched_lr.get(searched_target(v.kind))
            model = cached_steps.train(ctx, "a_tuning", stage1, None, seed, lr=lr)
            data = cached_steps.datasets(stage1)
            chain += [*data, model]
            samples += sum(d.info["n"] for d in data)
        if kind.b_tuning:
            picked = cached_steps.select(ctx, model, v.selection, ctx.data_seed(seed))
            model = cached_steps.train(ctx, "b_tuning", picked, model, seed, lr=self.searched_lr.get("b_tuning"))
            chain += [picked, model]
            samples += picked.info["n"]
        return model, samples, chain

    def train_rows(self, order: list[VariantConfig], seeds: list[int]) -> list[Step | None]:
        """Every LLM row's model at every seed of this run, trained (or found in the cache), each once."""
        models: dict[str | None, Step | None] = {}
        for seed in seeds:
            for v in (v for v in order if seed in self.suite.seeds_of(v)):
                kind = get_variant_kind(v.kind)
                if kind.evaluator is None and kind.scorer is None:
                    model = self._trained_model(kind, v, seed)[0]
                    models[None if model is None else model.key] = model
        return list(models.values())

    def matched_samples(self, seed: int) -> int:
        """How many samples ``ours`` trained on at ``seed`` (its two stages): from this run, else from an earlier
        part's file, else by training ``ours`` now."""
        ours = self.suite.ours
        if seed in self.results.get(ours, {}):
            return self.results[ours][seed]["train_samples"]
        earlier = earlier_train_samples(self.suite, ours, seed)
        if earlier is not None:
            return earlier
        return self._trained_model(get_variant_kind("behaviorlm"), self.suite.variant(ours), seed)[1]

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

    def _context(self) -> BenchContext:
        if self.ctx is None:
            raise RuntimeError("BenchRunner.run() prepares the data first")
        return self.ctx

    def _prepare(self) -> BenchContext:
        steps.preflight(
            steps.ModelSpec(self.suite.model_name_or_path, self.suite.template),
            self.suite.prepare,
            _selections(self.suite),
            [self.suite.recipe_path(stage) for stage in ("a_tuning", "b_tuning")],
        )
        ensure_prepared(self.suite.prepare, self.log)
        ctx = build_context(self.suite, self.cache, self.log)
        try:
            check_rows_against_data(ctx, [v for v in self.suite.variants if self.only is None or v.name in self.only])
        except ValueError as err:
            raise BenchError(f"{self.suite.source or 'suite'}: {err}") from err
        return ctx

    def run(self) -> dict:
        t0 = time.time()
        self.ctx = ctx = self._prepare()
        results = self.results
        search = None
        if self.suite.lr_search:
            search, self.searched_lr = run_lr_search(ctx, only=self.only, part=self.part, matched=self._matched_with)
        order = self._variant_order()
        out = part_path(self.suite, self.part.name) if self.part else Path(self.suite.out_dir) / "results.json"
        extra = {"lr_search": search} if search else {}
        prov = provenance(self.suite, ctx.fp, ctx.eval_ids) if self.part else None

        def save(results: dict) -> None:
            out.parent.mkdir(parents=True, exist_ok=True)
            if prov is not None:  # a part file: provenance and checksum, checked at merge
                write_part(out, {**results, "part": self.part.name}, prov)
            else:
                atomic_write_json(out, results)

        def snapshot(sasrec=None, evidence=None) -> dict:
            return {
                **assemble_results(self.suite, results, sasrec, self.cache.ran, time.time() - t0, evidence),
                **extra,
            }

        seeds = self.part.seeds if self.part and self.part.seeds else self.suite.seeds
        if self.part is not None and not self.part.evaluate:  # train only: a later part scores these models
            trained = self.train_rows(order, seeds)
            done = {**snapshot(evidence=collect_evidence(ctx, {})), "variants": {}, "complete": True}
            done["trained_models"] = [m.key for m in trained if m is not None]
            save(done)
            return done
        if self.suite.score_together > 1:  # the rows then find their evaluations cached: the same entries and scores
            cached_steps.evaluate_together(ctx, self.train_rows(order, seeds))
        total = sum(len(set(self.suite.seeds_of(v)) & set(seeds)) for v in order)
        with tqdm(total=total, desc="bench", unit="run") as bar:
            for seed in seeds:
                for v in (v for v in order if seed in self.suite.seeds_of(v)):
                    bar.set_postfix_str(f"{v.name} / seed {seed}")
                    if seed not in results.get(v.name, {}):  # the lr search may have run ours already
                        results.setdefault(v.name, {})[seed] = self.run_variant(v, seed)
                    bar.update()
                    # A readable snapshot after every run, with its evidence (samples, frontier, bootstrap so far):
                    # long suites can be inspected, or salvaged and rendered with --report-only, midway.
                    partial = snapshot(evidence=collect_evidence(ctx, results))
                    save({**partial, "bootstrap": bootstrap_table(partial), "complete": False})  # primaries: at the end
        run_sasrec = self.suite.sasrec.enabled and (self.part.sasrec if self.part else True)
        sasrec = run_sasrec_steps(ctx) if run_sasrec else None
        final = snapshot(sasrec, collect_evidence(ctx, results))
        final = {**final, "bootstrap": bootstrap_table(final), "primary_table": primary_table(final), "complete": True}
        if self.part:
            save(final)
        else:
            write_outputs(self.suite.out_dir, final)
        return final

    def _matched_with(self, seed: int, winners: dict[str, float]) -> int:
        """:meth:`matched_samples` with the learning rates the search has chosen so far (``ours`` trains at
        the A-Tuning winner)."""
        self.searched_lr.update(winners)
        return self.matched_samples(seed)


def run_parts(suite: SuiteConfig, names: list[str], log: Callable[[str], None] = print) -> dict:
    """Run each named part into its file, then merge every complete part file there is.

    A part runs under its lock (``parts/NAME.lock``): ``next`` takes the first part that is neither done nor
    held by another process, and a named part another process is running is waited for, so two processes on
    one ``out_dir`` never run the same part or lose each other's file.
    """
    wanted = [n.strip() for raw in names for n in raw.split(",") if n.strip()]
    resolve_parts(suite, [n for n in wanted if n != NEXT])  # unknown names fail before any part runs
    known = {p.name: p for p in suite.parts}
    ran: set[str] = set()
    fp = None
    for name in wanted:
        if name == NEXT:
            claimed = claim_next(suite, skip=ran)
            if claimed is None:
                raise BenchError(
                    f"--part next: every part of {suite.name!r} is done or being run by another process; "
                    "--merge renders the report"
                )
            part, lock = claimed
        else:
            part, lock = known[name], part_lock(suite, name)
            if part.name in ran:
                continue
            try:
                lock.acquire(timeout=0)
            except Timeout:
                log(f"[bench] part {name} is being run by another process; waiting for it")
                lock.acquire()
        try:
            log(f"[bench] part {part.name}: {', '.join(part.variants) or '-'}{' + SASRec' if part.sasrec else ''}")
            runner = BenchRunner(suite, log=log, only=part.variants, part=part)
            runner.run()
            fp = runner.ctx.fp if runner.ctx else fp
        finally:
            lock.release()
        ran.add(part.name)
    return merge_parts(suite, log, data_fp=fp)
