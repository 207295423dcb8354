"""Load what a server needs: the manifest (``behaviorlm.json`` or ``--stats``) and the exact scorer."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

from behaviorlm_plugin.data.dataset import DatasetStats
from behaviorlm_plugin.data.prompts import available_formats
from behaviorlm_plugin.data.serving_manifest import MANIFEST_FILE, ManifestError, ServingManifest, read_manifest
from behaviorlm_plugin.hparams.serve_args import ServeArguments
from behaviorlm_plugin.model.default_model import resolve_template
from behaviorlm_plugin.serve.predictor import Predictor


def _template(args: ServeArguments, manifest_template: str | None) -> str | None:
    """``auto``: the manifest's, else the default model's marker; ``none``: the tokenizer's chat template."""

    if args.template == "auto":
        return manifest_template if manifest_template is not None else resolve_template(args.model, "auto")
    return resolve_template(args.model, args.template)


def load_manifest(args: ServeArguments) -> ServingManifest:
    """``--stats`` when given (a base model + adapter), else the model folder's ``behaviorlm.json``."""
    own = Path(args.model) / MANIFEST_FILE
    if args.stats:
        own_template = read_manifest(own).template if own.is_file() else None
        stats = DatasetStats.read(args.stats)
        manifest = ServingManifest.from_stats(stats, template=_template(args, own_template))
    elif own.is_file():
        manifest = read_manifest(own)
        manifest = dataclasses.replace(manifest, template=_template(args, manifest.template))
    else:
        raise ManifestError(
            f"--model {args.model}: has no {MANIFEST_FILE}; serve a merged export (the pipeline's export writes it) "
            "or pass --stats DATASET/stats.json for a base model with an adapter"
        )
    missing = [f for f in manifest.prompt_formats if f not in available_formats()]
    if missing:
        raise ManifestError(
            f"prompt format(s) {missing} of the model are not registered here; register them "
            f"(behaviorlm_plugin.data.prompts.register_prompt_format via $BEHAVIORLM_PLUGINS) before serving"
        )
    return manifest


def load_predictor(args: ServeArguments) -> Predictor:
    """The manifest, then the model (once: a server holds one model)."""
    from behaviorlm_plugin.model.scoring import CandidateScorer  # deferred: torch, after the manifest checks

    manifest = load_manifest(args)
    scorer = CandidateScorer.from_pretrained(
        args.model,
        args.adapter,
        batch_size=args.max_batch,
        max_length=args.max_length,
        device=args.device,
        dtype=args.dtype,
        template=manifest.template,
        show_progress=False,
    )
    # Requests are checked on the event loop while a batch runs in the scoring thread; a fast tokenizer is
    # not safe to share across threads, so the length check gets its own copy (the model is shared, unused).
    checker = CandidateScorer(scorer.model, copy.deepcopy(scorer.tokenizer), scorer.config)
    model_id = args.model_id or Path(args.adapter or args.model).name
    return Predictor(scorer, manifest, model_id=model_id, alpha=args.prior_correction.alpha, encoder=checker)
