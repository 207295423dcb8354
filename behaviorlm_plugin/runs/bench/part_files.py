"""One part file (``out_dir/parts/NAME.json``): what it records about where it came from, and the checks a merge
makes before it trusts it.

A part file is committed and merged later, perhaps on another machine, so it carries its provenance:

* ``config_fingerprint``: the suite's settings that decide results (never where files live: ``out_dir``,
  ``cache_dir`` and the data folder are left out, recipes count by content);
* ``data_fingerprint``: the prepared data's content (:func:`~behaviorlm_plugin.runs.bench.cache.data_fingerprint`);
* ``eval_ids``: a digest of the evaluation sample ids (the ids themselves are in ``eval_samples``);
* ``git``: the commit and whether the tree had uncommitted changes;
* ``versions``: torch, transformers, peft and llamafactory;

and a ``checksum`` of its own content. :func:`read_part` refuses a file that does not parse, fails its checksum,
has the wrong shape or was made with another config or data; the message names the file and the part to re-run.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from importlib import metadata
from pathlib import Path

from behaviorlm_plugin.extras.fileio import atomic_write_json
from behaviorlm_plugin.extras.git import git
from behaviorlm_plugin.extras.hashing import digest, file_hash
from behaviorlm_plugin.hparams.bench_args import SuiteConfig
from behaviorlm_plugin.hparams.parser import ConfigError

PART_FORMAT = 2
"""2: provenance and checksum (format 1, before them, is refused: re-run the part)."""
NOT_RESULTS = ("out_dir", "cache_dir", "parts", "time_model", "note", "base_dir", "score_together")
"""Suite keys that change where things go or how they are shown, never a number in the results."""
VERSIONED = ("torch", "transformers", "peft", "llamafactory")
REPO = Path(__file__).resolve().parents[3]


class PartFileError(ConfigError):
    """A part file a merge cannot trust; the message names the file and the part to re-run."""


def config_fingerprint(suite: SuiteConfig) -> str:
    """The suite's result-deciding settings: recipes by content, the data by its arguments (not its folder)."""
    raw = {k: v for k, v in asdict(suite).items() if k not in NOT_RESULTS}
    raw["recipes"] = {
        stage: file_hash(suite.recipe_path(stage)) if suite.recipe_path(stage).is_file() else None
        for stage in ("a_tuning", "b_tuning")
    }
    raw["prepare"] = {k: v for k, v in raw["prepare"].items() if k not in ("dataset_dir", "overwrite", "engine")}
    if raw["prepare"]["canary_rule"] is None:  # added later (the canary): unset, it leaves the fingerprint as it was
        del raw["prepare"]["canary_rule"]
    for key, unset in (("data_seed", None), ("stock_forward", False)):  # added later: unset, likewise
        if raw[key] == unset:
            del raw[key]
    return digest(raw)


def git_state(repo: Path = REPO) -> dict:
    """The commit and a dirty flag (``None`` outside a git checkout)."""
    commit = git(["rev-parse", "HEAD"], repo)
    status = git(["status", "--porcelain", "--untracked-files=no"], repo)
    if commit is None or status is None:
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": bool(status)}


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for pkg in VERSIONED:
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return out


def provenance(suite: SuiteConfig, data_fp: str, eval_ids: dict[str, list[str]]) -> dict:
    return {
        "format": PART_FORMAT,
        "config_fingerprint": config_fingerprint(suite),
        "data_fingerprint": data_fp,
        "eval_ids": digest(eval_ids),
        "git": git_state(),
        "versions": versions(),
    }


def checksum(content: dict) -> str:
    """sha256 of the content without its ``checksum`` key, in a canonical form (sorted keys)."""
    body = {k: v for k, v in content.items() if k != "checksum"}
    text = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"), allow_nan=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def write_part(path: Path, results: dict, prov: dict) -> None:
    """The part's results with their provenance and checksum, written atomically."""
    content = {**results, "provenance": prov}
    atomic_write_json(path, {**content, "checksum": checksum(content)})


def _rerun(name: str) -> str:
    return f"re-run that part: behaviorlm bench SUITE.yaml --part {name} (delete the file first if it stays refused)"


def read_part(path: Path, name: str, suite: SuiteConfig) -> dict:
    """A part file the merge can trust, or :class:`PartFileError` (see the module docstring)."""
    try:
        content = json.loads(path.read_text("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        where = f" (line {err.lineno}, column {err.colno}: {err.msg})" if isinstance(err, json.JSONDecodeError) else ""
        raise PartFileError(
            f"{path}: not valid JSON{where}; the file is damaged or truncated; {_rerun(name)}"
        ) from None
    if not isinstance(content, dict):
        raise PartFileError(f"{path}: expected a JSON object, got {type(content).__name__}; {_rerun(name)}")
    if "checksum" not in content or "provenance" not in content:
        raise PartFileError(
            f"{path}: no provenance or checksum (written before part files carried them, or not a part file); "
            f"{_rerun(name)}"
        )
    if content["checksum"] != checksum(content):
        raise PartFileError(f"{path}: checksum mismatch (the content changed after it was written); {_rerun(name)}")
    problem = _shape_problem(content, name)
    if problem:
        raise PartFileError(f"{path}: {problem}; {_rerun(name)}")
    prov = content["provenance"]
    if prov.get("format") != PART_FORMAT:
        raise PartFileError(
            f"{path}: part format {prov.get('format')!r}, this code reads {PART_FORMAT}; {_rerun(name)}"
        )
    if prov.get("config_fingerprint") != config_fingerprint(suite):
        raise PartFileError(
            f"{path}: made with other suite settings (config fingerprint {prov.get('config_fingerprint')!r} != "
            f"{config_fingerprint(suite)!r}); {_rerun(name)}, or merge with the suite file it was made with"
        )
    return content


def check_same_data(loaded: list[tuple[Path, dict]], current_fp: str | None) -> None:
    """Every part was made on the same data, and on the data prepared now when it is there."""
    want = current_fp or (loaded[0][1]["provenance"]["data_fingerprint"] if loaded else None)
    for path, content in loaded:
        fp = content["provenance"]["data_fingerprint"]
        if fp != want:
            raise PartFileError(
                f"{path}: made on other data (data fingerprint {fp!r} != {want!r}); "
                f"{_rerun(content.get('part') or path.stem)} on this data"
            )


def _shape_problem(content: dict, name: str) -> str | None:
    """What is wrong with the shape of a part file's content, or None."""
    expect = {"variants": dict, "complete": bool, "provenance": dict, "eval_samples": dict, "steps": dict}
    for key, kind in expect.items():
        if not isinstance(content.get(key), kind):
            got = type(content[key]).__name__ if key in content else "nothing"
            return f"'{key}' should be a {kind.__name__}, got {got}"
    if content.get("part") not in (None, name):
        return f"holds part {content.get('part')!r}, not {name!r}"
    for row, v in content["variants"].items():
        if not isinstance(v, dict) or not isinstance(v.get("per_seed"), dict):
            return f"variants[{row!r}] has no per_seed mapping"
        for seed, rec in v["per_seed"].items():
            if not isinstance(rec, dict) or not isinstance(rec.get("metrics"), dict):
                return f"variants[{row!r}].per_seed[{seed!r}] has no metrics mapping"
            if not isinstance(rec.get("train_samples"), int | float) or isinstance(rec.get("train_samples"), bool):
                return f"variants[{row!r}].per_seed[{seed!r}].train_samples should be a number"
            if not isinstance(rec.get("predictions", {}), dict):
                return f"variants[{row!r}].per_seed[{seed!r}].predictions should be a mapping"
    for split, s in content["eval_samples"].items():
        if not isinstance(s, dict) or not isinstance(s.get("ids"), list) or not isinstance(s.get("labels"), list):
            return f"eval_samples[{split!r}] should hold ids and labels lists"
        if len(s["ids"]) != len(s["labels"]):
            return f"eval_samples[{split!r}] has {len(s['ids'])} ids but {len(s['labels'])} labels"
    return None
