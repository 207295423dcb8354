"""``behaviorlm.json``: what a served model needs beside its weights (behaviors, prior, prompt settings).

The merged export writes it (:func:`behaviorlm_plugin.tuning.export.export_and_verify`), so
``behaviorlm serve --model EXPORT_DIR`` needs nothing else. A base model with an adapter gets the same
manifest built from the dataset's ``stats.json`` (``--stats``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from behaviorlm_plugin.data.dataset import DatasetStats
from behaviorlm_plugin.extras.fileio import atomic_write_json
from behaviorlm_plugin.hparams.parser import ConfigError, build
from behaviorlm_plugin.hparams.prior_correction_args import PriorCorrectionArguments, as_prior_correction

MANIFEST_FILE = "behaviorlm.json"
MANIFEST_VERSION = 2
READS_VERSIONS = (1, 2)
"""Version 1 held ``prior_correction`` as a bare alpha; version 2 holds the block (``{"alpha": ...}``). Both load."""


class ManifestError(ValueError):
    """A missing or malformed ``behaviorlm.json``; the message names the file, the key and the fix."""


@dataclass(frozen=True)
class ServingManifest:
    """The candidate set (in the vocabulary order prompts list it), its categories and prior, and the prompt
    settings the model was tuned with."""

    behaviors: list[str] = field(metadata={"help": "Candidate behaviors in vocabulary order."})
    anchor_tail: dict[str, str] = field(metadata={"help": "anchor or tail per behavior (training split)."})
    head_medium_tail: dict[str, str] = field(metadata={"help": "head, medium or tail per behavior."})
    train_frequency: dict[str, float] = field(metadata={"help": "The training prior of the prior correction."})
    history_len: int = field(metadata={"help": "Events of history the model was tuned on."})
    prompt_formats: list[str] = field(metadata={"help": "Prompt formats of training; the first is the default."})
    template: str | None = field(default=None, metadata={"help": "LLaMA-Factory template (None: chat template)."})
    prior_correction: PriorCorrectionArguments = field(
        default_factory=PriorCorrectionArguments, metadata={"help": "The alpha the evaluation used, if any."}
    )
    timezone: str | None = field(default=None, metadata={"help": "prepare's --timezone for timestamps."})
    dataset: str = field(default="", metadata={"help": "Name of the dataset the model was tuned on."})

    def __post_init__(self) -> None:
        object.__setattr__(self, "prior_correction", as_prior_correction(self.prior_correction))
        if len(self.behaviors) < 2:
            raise ManifestError(f"a served model needs at least two candidate behaviors, got {self.behaviors}")
        for key in ("anchor_tail", "head_medium_tail", "train_frequency"):
            missing = [b for b in self.behaviors if b not in getattr(self, key)]
            if missing:
                raise ManifestError(f"{key}: no entry for {missing[:5]}")
        if self.history_len < 1:
            raise ManifestError(f"history_len must be >= 1, got {self.history_len}")
        if not self.prompt_formats:
            raise ManifestError("prompt_formats: needs at least one format")
        if self.prior_correction.is_auto:
            raise ManifestError("prior_correction.alpha: a served model needs a number (auto is chosen at evaluation)")

    @classmethod
    def from_stats(cls, stats: DatasetStats, *, template: str | None, alpha: float | None = None) -> ServingManifest:
        """The manifest of a model tuned on the dataset of ``stats`` (its ``prepare`` arguments)."""
        args = stats.arguments or {}
        formats = [f.strip() for f in str(args.get("prompt_formats") or "instruct1").split(",") if f.strip()]
        return cls(
            behaviors=stats.behavior_list,
            anchor_tail=stats.anchor_tail,
            head_medium_tail=stats.head_medium_tail,
            train_frequency=stats.frequency,
            history_len=int(args.get("history_len") or 20),
            prompt_formats=formats,
            template=template,
            prior_correction=PriorCorrectionArguments(alpha=alpha),
            timezone=args.get("timezone"),
            dataset=stats.name,
        )

    def to_json(self) -> dict:
        # The alpha only: the choice's grid and floor stay in the evaluation's metrics.json.
        return {"version": MANIFEST_VERSION, **asdict(self), "prior_correction": {"alpha": self.prior_correction.alpha}}


def write_manifest(model_dir: str | Path, manifest: ServingManifest) -> Path:
    path = Path(model_dir) / MANIFEST_FILE
    atomic_write_json(path, manifest.to_json())
    return path


def read_manifest(path: str | Path) -> ServingManifest:
    """Read ``behaviorlm.json`` (a file, or the model folder that holds it)."""
    path = Path(path)
    if path.is_dir():
        path = path / MANIFEST_FILE
    if not path.is_file():
        raise ManifestError(
            f"{path}: not found; serve a merged export (it writes {MANIFEST_FILE}) or pass --stats stats.json"
        )
    try:
        raw = json.loads(path.read_text("utf-8"))
    except json.JSONDecodeError as err:
        raise ManifestError(f"{path}: not valid JSON (line {err.lineno}: {err.msg}); re-export the model") from err
    if not isinstance(raw, dict):
        raise ManifestError(f"{path}: expected a JSON object; re-export the model")
    version = raw.pop("version", MANIFEST_VERSION)
    if version not in READS_VERSIONS:
        raise ManifestError(f"{path}: unsupported version {version!r}; this code reads versions {READS_VERSIONS}")
    known = set(ServingManifest.__dataclass_fields__)
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ManifestError(f"{path}: unknown key(s) {unknown}; known: {sorted(known)}")
    try:
        # A version-1 bare alpha is the block's shorthand, so old exports load unchanged.
        raw["prior_correction"] = build(PriorCorrectionArguments, raw.get("prior_correction"), where=str(path))
        return ServingManifest(**raw)
    except ConfigError as err:
        raise ManifestError(f"{err}; re-export the model") from err
    except TypeError as err:
        raise ManifestError(f"{path}: {err}; re-export the model") from err
    except ValueError as err:
        raise ManifestError(f"{path}: {err}") from err
