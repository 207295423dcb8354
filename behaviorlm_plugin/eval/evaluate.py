"""``behaviorlm evaluate``: preds.jsonl + the dataset's stats -> metrics.json, the paper's table and plots."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from behaviorlm_plugin.data.dataset import DatasetStats, PreparedDataset
from behaviorlm_plugin.eval.metrics import PAPER_COLUMNS, classification_metrics, format_table, ranking_metrics
from behaviorlm_plugin.eval.plots import plot_confusion, plot_per_behavior
from behaviorlm_plugin.eval.predict import load_scorer, predict, rank_and_world
from behaviorlm_plugin.eval.prior_correction import apply_prior_correction
from behaviorlm_plugin.extras.fileio import atomic_write_json, atomic_write_jsonl, read_jsonl
from behaviorlm_plugin.extras.pause import pause_point
from behaviorlm_plugin.hparams.eval_args import EvaluationArguments, PredictArguments
from behaviorlm_plugin.hparams.prior_correction_args import PriorCorrectionArguments
from behaviorlm_plugin.model.default_model import resolve_template

if TYPE_CHECKING:
    from behaviorlm_plugin.model.scoring import CandidateScorer


class EvaluationError(ValueError):
    """Bad evaluation input; the message names the file and the fix."""


REQUIRED_ROW_KEYS = ("label", "prediction")


def _check_rows(preds: list[dict], stats: DatasetStats, source: str) -> None:
    """Rows that would give wrong metrics without a word: missing keys, repeats, foreign labels, a prediction
    that is not the top of its own ranking."""
    seen: set = set()
    known = set(stats.behaviors)
    for i, p in enumerate(preds, start=1):
        missing = [k for k in REQUIRED_ROW_KEYS if k not in p]
        if missing:
            raise EvaluationError(
                f"{source}: row {i} has no {', '.join(missing)}; give a preds.jsonl written by `behaviorlm predict`"
            )
        if p.get("id") is not None:
            if p["id"] in seen:
                raise EvaluationError(f"{source}: row {i} repeats id {p['id']!r}; each sample must be scored once")
            seen.add(p["id"])
        if p["label"] not in known:
            raise EvaluationError(
                f"{source}: row {i} has label {p['label']!r}, which is not a behavior of {stats.path}; pass the "
                "--stats of the dataset these predictions were made on"
            )
        ranked = p.get("ranked") or []
        if p.get("method", "score") == "score" and ranked and ranked[0].get("behavior") != p["prediction"]:
            raise EvaluationError(
                f"{source}: row {i}: prediction {p['prediction']!r} is not the top-ranked candidate "
                f"{ranked[0].get('behavior')!r}; the file was edited or mixes outputs"
            )
    methods = {p.get("method") for p in preds}
    if len(methods) > 1:
        raise EvaluationError(f"{source}: mixes methods {sorted(map(str, methods))}; evaluate one method per file")


def evaluate_predictions(preds: list[dict], stats: DatasetStats, source: str = "predictions") -> dict:
    """The metric dict for ``preds`` (rows of preds.jsonl)."""
    if not preds:
        raise EvaluationError(f"{source}: no predictions to evaluate")
    _check_rows(preds, stats, source)
    freq = stats.frequency
    y_true = [p["label"] for p in preds]
    # An invalid generation counts as wrong; it never matches a real label.
    y_pred = [p["prediction"] if p["prediction"] is not None else "<invalid>" for p in preds]
    cats = {**stats.head_medium_tail, "<invalid>": "tail"}
    m = classification_metrics(y_true, y_pred, cats, all_labels=stats.behavior_list)
    m["per_behavior"].pop("<invalid>", None)
    for b, v in m["per_behavior"].items():
        v["train_frequency"] = freq.get(b)
    if preds[0].get("method") == "score":
        kept = min(len(p["ranked"]) for p in preds)  # --top-k bounds which HR@k/NDCG@k can be computed
        ks = tuple(k for k in (1, 3, 5) if k <= kept)
        m.update(ranking_metrics([[r["behavior"] for r in p["ranked"]] for p in preds], y_true, ks=ks))
    else:
        m["invalid_rate"] = sum(p["prediction"] is None for p in preds) / len(preds)
    m["method"] = preds[0].get("method")
    return m


def evaluate_file(
    preds_path: str | Path,
    stats: DatasetStats,
    out_dir: str | Path,
    name: str = "model",
    *,
    prior_correction: PriorCorrectionArguments | None = None,
    val_preds: list[dict] | None = None,
) -> dict:
    """metrics.json + two plots in ``out_dir``; under an active ``prior_correction`` (``auto`` chooses alpha on
    ``val_preds``) the predictions are re-ranked first, into ``preds_prior_corrected.jsonl``."""
    preds = read_jsonl(preds_path)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    info = {"alpha": 0.0}
    if prior_correction is not None and prior_correction.active:
        preds, info = apply_prior_correction(preds, stats, prior_correction, val_preds=val_preds)
        atomic_write_jsonl(out_dir / "preds_prior_corrected.jsonl", preds)
    m = evaluate_predictions(preds, stats, source=str(preds_path))
    m.update(info)
    m["predictions_file"] = str(preds_path)
    atomic_write_json(out_dir / "metrics.json", m)
    plot_per_behavior(m, out_dir / "per_behavior_accuracy.png", stats.metric_thresholds)
    plot_confusion(preds, stats.behavior_list, out_dir / "confusion.png")
    return m


def evaluate_splits(
    *,
    model: str,
    adapter: str | None,
    template: str | None,
    data: PreparedDataset,
    evaluation: EvaluationArguments,
    out_dir: Path,
) -> dict[str, dict]:
    """Predict and score each split of ``evaluation`` (with its caps) into ``out_dir/<split>/``.

    With ``evaluation.prior_correction`` the metrics are those of the rule; ``auto`` picks alpha on val, which is
    therefore scored first. One process loads the model once for all splits.
    """
    if not evaluation.splits:
        return {}
    job = _Job(model, adapter, template, data, evaluation)
    scorer = load_scorer(job.args(evaluation.splits[0], out_dir)) if rank_and_world()[1] == 1 else None
    return job.run(scorer, [Path(out_dir)])[0]


def evaluate_with_zero_shot(
    *,
    model: str,
    adapter: str,
    template: str | None,
    data: PreparedDataset,
    evaluation: EvaluationArguments,
    out_dir: Path,
    zero_shot_dir: Path,
) -> tuple[dict[str, dict], dict[str, dict]]:
    """:func:`evaluate_splits` of the tuned model into ``out_dir`` and of its base model (zero-shot) into
    ``zero_shot_dir``, on the same samples, in one pass where the adapter allows it (:func:`evaluate_together`)."""
    tuned, base = evaluate_together(
        model=model,
        adapters=[adapter],
        template=template,
        data=data,
        evaluation=evaluation,
        out_dirs=[Path(out_dir)],
        zero_shot_dir=Path(zero_shot_dir),
    )
    return tuned[0], base


def evaluate_together(
    *,
    model: str,
    adapters: Sequence[str],
    template: str | None,
    data: PreparedDataset,
    evaluation: EvaluationArguments,
    out_dirs: Sequence[Path],
    zero_shot_dir: Path | None = None,
) -> tuple[list[dict[str, dict]], dict[str, dict] | None]:
    """:func:`evaluate_splits` of each adapter into its ``out_dirs`` entry and, with ``zero_shot_dir``, of the
    base model too, on the same samples. Where every adapter leaves the lower layers alone, all of them come
    from one pass that runs those layers once (:mod:`behaviorlm_plugin.model.twin`); otherwise each model is
    scored on its own. Returns each adapter's metrics by split, then the base model's (or ``None``)."""
    from behaviorlm_plugin.model.twin import twin_scorer  # deferred: torch (evaluate --preds needs none)

    if len(adapters) != len(out_dirs) or not adapters:
        raise ValueError(f"{len(adapters)} adapters but {len(out_dirs)} output folders; give one folder per adapter")
    twin = None
    with_base = zero_shot_dir is not None  # otherwise the pass skips the base model's own top layers
    if rank_and_world()[1] == 1:
        names = [f"tuned_{k}" for k in range(len(adapters))] if len(adapters) > 1 else None
        twin = twin_scorer(
            model, list(adapters), names, with_base=with_base, batch_size=evaluation.batch_size,
            template=resolve_template(model, template),
        )  # fmt: skip
    if twin is not None:
        dirs = [Path(d) for d in out_dirs] + ([Path(zero_shot_dir)] if with_base else [])
        models = [*adapters, None] if with_base else list(adapters)
        results = _Job(model, adapters[0], template, data, evaluation).run(twin, dirs, models)
        return (results[:-1], results[-1]) if with_base else (results, None)
    common = {"model": model, "template": template, "data": data, "evaluation": evaluation}
    tuned = [evaluate_splits(adapter=a, out_dir=d, **common) for a, d in zip(adapters, out_dirs, strict=True)]
    base = None if zero_shot_dir is None else evaluate_splits(adapter=None, out_dir=zero_shot_dir, **common)
    return tuned, base


@dataclass(frozen=True)
class _Job:
    """The splits of one evaluation: their predict arguments, and their scoring into one folder per variant."""

    model: str
    adapter: str | None
    template: str | None
    data: PreparedDataset
    evaluation: EvaluationArguments

    def args(self, split: str, out: Path) -> PredictArguments:
        cap = self.evaluation.cap(split)
        return PredictArguments(
            model=self.model,
            adapter=self.adapter,
            template=self.template,
            data=str(self.data.path(split)),
            out=str(out),
            top_k=0,
            max_samples=cap.max_samples,
            max_per_class=cap.max_per_class,
            batch_size=self.evaluation.batch_size,
            seed=self.evaluation.seed,
        )

    def run(
        self, scorer: CandidateScorer | None, dirs: list[Path], adapters: list[str | None] | None = None
    ) -> list[dict[str, dict]]:
        """Each split scored once (by ``scorer``, or a fresh one per split when ``None``); variant ``v`` of the
        scorer (whose adapter is ``adapters[v]``, for the run record) is written and evaluated into ``dirs[v]``."""
        ev = self.evaluation
        adapters = adapters if adapters is not None else [self.adapter]
        results: list[dict] = [{} for _ in dirs]
        val_rows: list[list[dict] | None] = [None for _ in dirs]  # each variant's val rows, for the rule's auto
        choose_on = ev.prior_correction.choose_on
        for split in sorted(ev.splits, key=lambda s: s != choose_on):
            outs = [d / split / "preds.jsonl" for d in dirs]
            predict(self.args(split, outs[0]), scorer=scorer, others=list(zip(outs[1:], adapters[1:], strict=True)))
            for v, (d, out, res) in enumerate(zip(dirs, outs, results, strict=True)):
                if split == choose_on:
                    val_rows[v] = read_jsonl(out)
                res[split] = evaluate_file(
                    out,
                    self.data.stats,
                    d / split,
                    name=split,
                    prior_correction=ev.prior_correction,
                    val_preds=val_rows[v],
                )
            pause_point("evaluate.split")  # tests: a kill here has scored and written some splits, not all
        return [{s: res[s] for s in ev.splits} for res in results]


def summary_text(m: dict, name: str) -> str:
    lines = [format_table({name: m}, PAPER_COLUMNS)]
    extra = {k: m[k] for k in ("hr@1", "hr@3", "hr@5", "ndcg@3", "ndcg@5", "invalid_rate") if k in m}
    if extra:
        lines.append("  " + "  ".join(f"{k}={v:.4f}" for k, v in extra.items()))
    lines.append(
        f"  samples={m['n']}  classes with test samples: head {m['n_classes_head']}, "
        f"medium {m['n_classes_medium']}, tail {m['n_classes_tail']}"
    )
    if m["classes_without_test_samples"]:
        lines.append(f"  no test samples (not scored): {', '.join(m['classes_without_test_samples'])}")
    return "\n".join(lines)
