"""behaviorlm.json (written beside an export, read by serve), loading rules and the serve arguments."""

from __future__ import annotations

import json

import pytest
from serve_fakes import manifest

from behaviorlm_plugin.data.dataset import DatasetStats
from behaviorlm_plugin.data.serving_manifest import MANIFEST_FILE, ManifestError, read_manifest, write_manifest
from behaviorlm_plugin.hparams.serve_args import ServeArguments
from behaviorlm_plugin.serve.loading import load_manifest
from behaviorlm_plugin.tuning.export import write_serving_manifest


def test_round_trip(tmp_path):
    m = manifest(prior_correction=0.7, timezone="Europe/Paris")
    path = write_manifest(tmp_path, m)
    written = json.loads(path.read_text())
    assert path == tmp_path / MANIFEST_FILE and written["version"] == 2
    assert written["prior_correction"] == {"alpha": 0.7}
    assert read_manifest(tmp_path) == m


def test_a_version_1_export_still_loads(tmp_path):
    """Exports made before the prior correction was one block held a bare alpha: they load unchanged."""
    raw = manifest(prior_correction=0.7).to_json()
    raw.update(version=1, prior_correction=0.7)
    (tmp_path / MANIFEST_FILE).write_text(json.dumps(raw))
    old = read_manifest(tmp_path)
    assert old.prior_correction.alpha == 0.7 and old == manifest(prior_correction=0.7)
    raw.update(prior_correction=None)
    (tmp_path / MANIFEST_FILE).write_text(json.dumps(raw))
    assert read_manifest(tmp_path).prior_correction.alpha is None


def test_export_writes_what_serving_needs(prepared, tmp_path):
    d, stats = prepared
    path = write_serving_manifest(tmp_path, d / "beh" / "stats.json", "smollm2", alpha=0.5)
    m = read_manifest(path)
    assert m.behaviors == list(stats["behaviors"]) and m.template == "smollm2" and m.prior_correction.alpha == 0.5
    assert m.history_len == stats["arguments"]["history_len"]
    assert m.prompt_formats == stats["arguments"]["prompt_formats"].split(",")
    s = DatasetStats.read(d / "beh" / "stats.json")
    assert m.train_frequency == s.frequency and m.anchor_tail == s.anchor_tail


@pytest.mark.parametrize(
    ("text", "needle"),
    [("{", "not valid JSON"), ("[]", "JSON object"), ('{"version": 9}', "unsupported version")],
)
def test_bad_manifest_names_the_file(tmp_path, text, needle):
    (tmp_path / MANIFEST_FILE).write_text(text)
    with pytest.raises(ManifestError, match=needle) as err:
        read_manifest(tmp_path)
    assert MANIFEST_FILE in str(err.value)


def test_unknown_key_and_missing_prior_are_named(tmp_path):
    raw = manifest().to_json()
    (tmp_path / MANIFEST_FILE).write_text(json.dumps({**raw, "alhpa": 1}))
    with pytest.raises(ManifestError, match="alhpa"):
        read_manifest(tmp_path)
    raw["train_frequency"].pop("Yoga")
    (tmp_path / MANIFEST_FILE).write_text(json.dumps(raw))
    with pytest.raises(ManifestError, match=r"train_frequency.*Yoga"):
        read_manifest(tmp_path)


def test_loading_needs_a_manifest_or_stats(prepared, tmp_path):
    with pytest.raises(ManifestError, match="--stats"):
        load_manifest(ServeArguments(model=str(tmp_path)))
    write_manifest(tmp_path, manifest(template="smollm2"))
    assert load_manifest(ServeArguments(model=str(tmp_path))).template == "smollm2"
    assert load_manifest(ServeArguments(model=str(tmp_path), template="none")).template is None
    d, stats = prepared
    from_stats = load_manifest(ServeArguments(model=str(tmp_path), stats=str(d / "beh" / "stats.json")))
    assert from_stats.behaviors == list(stats["behaviors"]) and from_stats.template == "smollm2"
    write_manifest(tmp_path, manifest(prompt_formats=["nope"]))
    with pytest.raises(ManifestError, match="nope"):
        load_manifest(ServeArguments(model=str(tmp_path)))


@pytest.mark.parametrize(
    "kw",
    [dict(port=0), dict(max_batch=0), dict(max_queue=2, max_batch=4), dict(prior_correction=-1), dict(api_key=" ")],
)
def test_bad_serve_arguments(kw):
    with pytest.raises(ValueError):
        ServeArguments(model="m", **kw)


def test_defaults_are_safe():
    a = ServeArguments(model="m")
    assert a.host == "127.0.0.1" and a.api_key is None and a.max_queue >= a.max_batch


def test_cli_has_serve(capsys):
    from behaviorlm_plugin.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["serve", "--help"])
    assert exit_.value.code == 0 and "--max-wait-ms" in capsys.readouterr().out
