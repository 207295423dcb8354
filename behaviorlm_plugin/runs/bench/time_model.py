"""What ``--list-parts`` expects each part of a suite to take, from the suite's ``time_model`` rates.

The estimate counts the work as the step cache and the reuse paths do it:

* a training run shared by several rows (``anchor-only`` is BehaviorLM's A-Tuning; ``one-stage`` retrains on
  ours' data) counts once; with ``frozen_reuse`` on, the frozen layers' first pass counts once per training
  dataset (the mix, a subset, a B-set) and every epoch runs at the reuse rate; without it (``frozen_reuse`` off,
  or ``stock_forward``) there is no first pass and an epoch runs at ``stock_train_tokens_per_s`` (a
  ``stock_forward`` suite at ``stock_forward_tokens_per_s``: no answer-only head either);
* a part's trained models are scored together, ``score_together`` at a time, each model after the first
  costing ``score_model_fraction`` of one (``model/twin.py``);
* selection scores its pool (``max_scored_per_class`` per behavior) with the A-Tuned model.

Parts are estimated in the suite's order, each from the cache the parts before it leave (as they run): a row
of a later part that reuses an earlier part's training, selection or first pass does not pay for it again, and
the learning-rate search's trial at the winning rate is the seed-0 row's own training (the first value is assumed
to win). Draws of one family can be nested: ``steps.subset`` and the mix's anchors take ``Generator.choice(pool, n,
replace=False)`` of one seeded stream, which numpy draws by a tail shuffle (a smaller draw's samples all in a larger
one) when the pool is over 10,000 and ``n`` over a fiftieth of it, and otherwise by Floyd's algorithm (not nested);
:func:`nested` states that rule and a test pins it to numpy's draws. The frozen-layer cache is keyed by sample, so a
larger draw's first pass pays only for the samples a nested earlier draw of its family did not have.
``estimate_part`` alone estimates one part from a cold cache.

Training and first-pass rates measured at one number of tuned layers (``time_model.rates_top_layers`` of
``model_layers``) are scaled to the suite's ``lora_top_layers`` (:func:`layer_scales`): with the reuse an epoch
runs forward and backward through the tuned layers only, so it costs in proportion to them, and the first pass in
proportion to the frozen ones; a stock epoch runs forward through every layer and backward through the tuned ones,
about L + 2N layer passes. Scoring rates are not scaled (a shared pass's extra models cost more at a larger N).

The rates are the suite's; ``yaml_recipes/bench/cpu-main.yaml`` takes them from ``benchmarks/results/``.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field, replace

from behaviorlm_plugin.hparams.bench_args import SuiteConfig, VariantConfig
from behaviorlm_plugin.hparams.bench_plan_args import PartConfig
from behaviorlm_plugin.tuning.strategies import get_strategy


def eval_samples(suite: SuiteConfig, splits: list[str] | None = None) -> int:
    """Evaluation samples one model scores (every evaluated split, or ``splits``, with its caps)."""
    ev, caps, n = suite.evaluation, suite.evaluation.caps(), 0
    behaviors = suite.time_model.behaviors
    for split in ev.splits if splits is None else splits:
        cap = caps.get(split, {})
        if "max_per_class" in cap:
            n += min(cap["max_per_class"] * behaviors, cap.get("max_samples", 10**9))
        else:
            n += cap.get("max_samples", getattr(suite.prepare, f"max_{split}_samples", None) or 5000)
    return n


TAIL_SHUFFLE_POOL = 10_000
TAIL_SHUFFLE_FRACTION = 50
"""numpy's ``Generator.choice(pool, n, replace=False)`` shuffles the tail (nested across ``n``) when ``pool`` is over
``TAIL_SHUFFLE_POOL`` and ``n`` over ``pool // TAIL_SHUFFLE_FRACTION``; tests/runs/test_time_model.py pins it."""


def nested(small: float, large: float, pool: int | None) -> bool:
    """Whether seeded draws of ``small`` and ``large`` of one ``pool`` hold the smaller in the larger (equal sizes are
    one draw). ``pool`` None (unknown) nests nothing."""
    if small == large:
        return True
    if pool is None:
        return False
    return pool > TAIL_SHUFFLE_POOL and min(small, large) > pool // TAIL_SHUFFLE_FRACTION


def _draw_family(ident: tuple) -> tuple:
    """The nested draws a training dataset belongs to: natural subsets of one data seed (``("full_ft", seed, n)``),
    or mixes of one data seed and λ (``("mix", seed, anchors, λ)``); any other dataset is its own family."""
    if ident[0] == "full_ft":
        return ident[:2]
    if ident[0] == "mix":
        return ("mix", ident[1], ident[3])
    return ident


@dataclass(frozen=True)
class LayerScales:
    """Factors on the time a rate gives, for the suite's tuned layers against the rates' own."""

    epoch: float = 1.0  # an epoch with the reuse
    first_pass: float = 1.0  # the frozen layers' first pass (0: nothing is frozen)
    stock_epoch: float = 1.0  # an epoch without the reuse


def layer_scales(suite: SuiteConfig) -> LayerScales:
    """The suite's ``lora_top_layers`` N against the rates' N_r of L layers: an epoch with the reuse N / N_r, the
    first pass (L - N) / (L - N_r), a stock epoch (L + 2N) / (L + 2N_r); all 1 where the rates say no layers."""
    tm = suite.time_model
    if tm.rates_top_layers is None or tm.model_layers is None:
        return LayerScales()
    big_l, n_r = tm.model_layers, tm.rates_top_layers
    n = big_l if suite.lora_top_layers is None else suite.lora_top_layers  # None: LoRA on every layer
    return LayerScales(
        epoch=n / n_r, first_pass=(big_l - n) / (big_l - n_r), stock_epoch=(big_l + 2 * n) / (big_l + 2 * n_r)
    )


@dataclass
class _Tally:
    """One part's work, each shared piece once (as the step cache runs it)."""

    suite: SuiteConfig
    trainings: set = field(default_factory=set)
    selections: set = field(default_factory=set)
    first_passes: dict[tuple, list[float]] = field(default_factory=dict)  # draw family -> the sizes cached
    models: set = field(default_factory=set)
    scored: set = field(default_factory=set)
    seconds: float = 0.0

    @property
    def stock(self) -> bool:
        """Training runs the stock forward: the reuse is off, or ``stock_forward`` turns it off."""
        return not self.suite.frozen_reuse.enabled or self.suite.stock_forward

    @property
    def reuse(self) -> bool:
        return not self.stock and self.suite.time_model.first_pass_tokens_per_s is not None

    def train(self, run: tuple, data: list[tuple[tuple, float]]) -> None:
        """One training run (``run``: what identifies it) on ``data``: (dataset identity, samples) pairs."""
        if run in self.trainings:
            return
        self.trainings.add(run)
        tm, scale = self.suite.time_model, layer_scales(self.suite)
        n = sum(size for _, size in data)
        if self.stock:  # no first pass; the stock rates where the suite gives them
            rate = tm.stock_train_tokens_per_s or tm.train_tokens_per_s
            if self.suite.stock_forward:
                rate = tm.stock_forward_tokens_per_s or rate
            per_epoch = scale.stock_epoch
        else:
            rate, per_epoch = tm.train_tokens_per_s, scale.epoch
        self.seconds += tm.train_fixed_s + tm.epochs * n * tm.tokens_per_sample / rate * per_epoch
        if self.reuse:
            # Train_all's size stands for the anchors' pool too (an upper bound: the anchors are part of it).
            pool = self.suite.prepare.max_train_samples
            fresh = 0.0
            for ident, size in data:
                cached = self.first_passes.setdefault(_draw_family(ident), [])
                covered = max((c for c in cached if nested(c, size, pool)), default=0.0)
                fresh += max(0.0, size - covered)
                cached.append(size)
            self.seconds += fresh * tm.tokens_per_sample / tm.first_pass_tokens_per_s * scale.first_pass

    def select(self, picked: tuple, scored: int) -> None:
        """One selection (``picked``: the B-set it makes), scoring ``scored`` pool samples."""
        if picked in self.selections:
            return
        self.selections.add(picked)
        tm = self.suite.time_model
        self.seconds += (tm.eval_fixed_s + scored / tm.score_samples_per_s) if scored else 0.0

    def pass_seconds(self, models: int, samples: int) -> float:
        """``models`` scored on ``samples`` samples together, ``score_together`` at a time."""
        if not models:
            return 0.0
        tm = self.suite.time_model
        passes = math.ceil(models / self.suite.score_together)
        one = samples / tm.score_samples_per_s
        return passes * tm.eval_fixed_s + one * (passes + (models - passes) * tm.score_model_fraction)

    def scoring_seconds(self) -> float:
        """The models not yet scored, scored in groups of ``score_together``, the models after the first in a
        group at ``score_model_fraction`` each; they count as scored from then on."""
        n = len(self.models - self.scored)
        self.scored |= self.models
        return self.pass_seconds(n, eval_samples(self.suite))


def _row(t: _Tally, v: VariantConfig, seed: int, lr: dict[str, float | None]) -> None:
    """The work of one row at one seed (``lr``: the searched rates the row trains at, by target)."""
    suite, tm = t.suite, t.suite.time_model
    ours = suite.variant(suite.ours)
    b_n = ours.selection.k * tm.behaviors
    dseed = seed if suite.data_seed is None else suite.data_seed  # the data draws' seed (BenchContext.data_seed)

    def mix_of(row: VariantConfig) -> tuple[tuple, float]:
        anchors = row.a_tuning.anchors or 20000
        return ("mix", dseed, anchors, row.a_tuning.aux_ratio), anchors * (1 + row.a_tuning.aux_ratio)

    def b_set(row: VariantConfig, a_run: tuple | None) -> tuple[tuple, float]:
        # A B-set depends on the A-Tuned model, so on the run seed; its samples count as new ones (at worst).
        return ("select", dseed, row.selection.strategy, row.selection.k, a_run), row.selection.k * tm.behaviors

    if v.kind in ("logreg", "hour_place"):  # seconds on a CPU, whatever the size here
        t.seconds += tm.eval_fixed_s
        return
    if v.kind == "oracle":
        return
    if v.kind == "zero_shot":
        t.models.add(("base",))
        return
    matched = mix_of(ours)[1] + b_n
    a_run = None
    final = None
    if v.kind in ("anchor_only", "behaviorlm", "one_stage") and not v.skip_a_tuning:
        mix = mix_of(ours if v.kind == "one_stage" else v)
        a_run = ("a_tuning", seed, mix[0], lr.get("a_tuning"))
        t.train(a_run, [mix])
        final = a_run
    if v.kind in ("behaviorlm", "reverse", "one_stage"):
        row = ours if v.kind == "one_stage" else v
        picked = b_set(row, a_run)
        scores = get_strategy(row.selection.strategy).scores  # uniform scores nothing
        t.select(picked[0], row.selection.max_scored_per_class * tm.behaviors if scores else 0)
        if v.kind == "reverse":
            rare = (("rare", dseed, v.a_tuning.anchors), float(v.a_tuning.anchors or 0))
            a_run = ("a_tuning", seed, rare[0], None)
            t.train(a_run, [rare])
        if v.kind == "one_stage":
            final = ("one_stage", seed, mix_of(ours)[0], picked[0])
            t.train(final, [mix_of(ours), picked])
        else:
            final = ("b_tuning", seed, picked[0], a_run, lr.get("b_tuning"))
            t.train(final, [picked])
    if v.kind in ("full_ft", "balanced_ft"):
        n = matched if v.train_samples == "matched" else float(v.train_samples)
        data = ((v.kind, dseed, n), n)
        final = (v.kind, seed, data[0], lr.get("full_ft"))
        t.train(final, [data])
    if final is not None:
        t.models.add(final)


def _part_seconds(t: _Tally, part: PartConfig) -> float:
    """What ``part`` adds to the tally ``t`` (the work of the parts before it is already there)."""
    suite, tm = t.suite, t.suite.time_model
    before = t.seconds
    t.seconds += tm.startup_s
    search = suite.lr_search
    winners = {target: search.values[0] for target in search.targets} if search else {}
    ours = suite.variant(suite.ours)
    for target in part.lr_search:
        rows_models = set(t.models)
        for value in search.values if search else []:  # each trial trains its target at the search seed
            trial = {**winners, target: value}
            if target == "full_ft":
                _row(t, VariantConfig(name="trial", kind="full_ft", train_samples="matched"), search.seed, trial)
            else:
                _row(t, ours if target == "b_tuning" else replace(ours, kind="anchor_only"), search.seed, trial)
        # The trials are scored on the search's split only; the winner's row scores it on every split later.
        trials, t.models = t.models - rows_models, rows_models
        t.seconds += t.pass_seconds(len(trials), eval_samples(suite, [search.split]))
    for name in part.variants:
        v = suite.variant(name)
        for seed in suite.seeds_of(v):
            if part.seeds is None or seed in part.seeds:
                _row(t, v, seed, winners if search and seed == search.seed else dict.fromkeys(winners, "winner"))
    if part.sasrec:
        t.seconds += len(suite.seeds) * tm.sasrec_per_seed_s
    if part.evaluate:  # a train-only part leaves its models to the part that scores them
        t.seconds += t.scoring_seconds()
    return t.seconds - before


def estimate_part(suite: SuiteConfig, part: PartConfig) -> float:
    """Seconds the time model expects for ``part`` alone, from a cold cache."""
    return _part_seconds(_Tally(suite), part)


def estimate_parts(suite: SuiteConfig) -> dict[str, float]:
    """Seconds the time model expects for each part, run in the suite's order (see the module doc)."""
    t = _Tally(suite)
    return {p.name: _part_seconds(t, p) for p in suite.parts}


def at_samples(suite: SuiteConfig, samples: int) -> SuiteConfig:
    """``suite`` with ours' training set (A-Tuning mix + B-set) at ``samples``: every row's A-Tuning anchors
    are set so that mix + B-set = ``samples``; rows sized ``matched`` follow."""
    ours = suite.variant(suite.ours)
    b_n = ours.selection.k * suite.time_model.behaviors
    anchors = max(1, round((samples - b_n) / (1 + ours.a_tuning.aux_ratio)))
    sized = copy.copy(suite)  # not dataclasses.replace: a suite's __post_init__ adds its sweep rows again
    sized.variants = [replace(v, a_tuning=replace(v.a_tuning, anchors=anchors)) for v in suite.variants]
    sized.a_tuning = replace(suite.a_tuning, anchors=anchors)
    return sized


def without_reuse(suite: SuiteConfig) -> SuiteConfig | None:
    """``suite`` as it would run with neither reuse: stock training epochs, each model scored on its own (``None``
    where the time model has no stock rate)."""
    tm = suite.time_model
    if tm.stock_train_tokens_per_s is None:
        return None
    stock = copy.copy(suite)
    stock.frozen_reuse = replace(suite.frozen_reuse, enabled=False)
    stock.score_together = 1
    stock.time_model = replace(tm, train_tokens_per_s=tm.stock_train_tokens_per_s)
    return stock


def plan_table(suite: SuiteConfig) -> str:
    """Each part's estimate and the total, at the suite's own size and at every ``time_model.plan_samples``; with a
    stock rate, the totals without the reuse below."""
    sizes = [None, *suite.time_model.plan_samples]
    heads = ["as written", *(f"{n:,} a row" for n in sizes[1:])]
    suites = [suite if n is None else at_samples(suite, n) for n in sizes]
    lines = [f"  {'part':<16}" + "".join(f"{h:>14}" for h in heads)]
    per_suite = [estimate_parts(s) for s in suites]
    totals = [sum(e.values()) for e in per_suite]
    for p in suite.parts:
        lines.append(f"  {p.name:<16}" + "".join(f"{_hm(e[p.name]):>14}" for e in per_suite))
    lines.append(f"  {'total':<16}" + "".join(f"{_hm(x):>14}" for x in totals))
    stock = [without_reuse(s) for s in suites]
    if all(s is not None for s in stock):
        plain = [sum(estimate_parts(s).values()) for s in stock]
        lines.append(f"  {'without reuse':<16}" + "".join(f"{_hm(x):>14}" for x in plain))
    return "\n".join(lines)


def _hm(seconds: float) -> str:
    h, m = divmod(round(seconds / 60), 60)
    return f"{h} h {m:02d} min" if h else f"{m} min"
