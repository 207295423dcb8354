"""A served answer equals offline ``predict`` on the same samples (tiny random Llama, real scorer)."""

from __future__ import annotations

import pytest
from conftest import small_prepare_args
from fastapi.testclient import TestClient

from behaviorlm_plugin.data.prepare import prepare
from behaviorlm_plugin.eval.predict import predict
from behaviorlm_plugin.extras.fileio import read_jsonl
from behaviorlm_plugin.hparams.eval_args import PredictArguments
from behaviorlm_plugin.hparams.serve_args import ServeArguments
from behaviorlm_plugin.serve.app import create_app
from behaviorlm_plugin.serve.loading import load_predictor
from behaviorlm_plugin.serve.prompting import render_request
from behaviorlm_plugin.serve.samples import requests_from_features
from behaviorlm_plugin.serve.schemas import PredictRequest

N = 6


@pytest.fixture(scope="module")
def fixed_order_dataset(tmp_path_factory):
    d = tmp_path_factory.mktemp("fixed")
    args = small_prepare_args(
        d,
        name="fix",
        synthetic_users=30,
        synthetic_days=7,
        max_train_samples=50,
        max_test_samples=N,
        prompt_formats="instruct2",
        fixed_candidate_order=True,
    )
    prepare(args)
    return d / "fix"


def test_served_answers_equal_offline_predict(fixed_order_dataset, tiny_model, tmp_path):
    data = fixed_order_dataset / "test.jsonl"
    offline = predict(PredictArguments(model=str(tiny_model), data=str(data), out=str(tmp_path / "p.jsonl"), top_k=0))
    reqs = requests_from_features(fixed_order_dataset / "test.features.npz", len(offline))
    args = ServeArguments(model=str(tiny_model), stats=str(fixed_order_dataset / "stats.json"), max_batch=4)
    predictor = load_predictor(args)

    recs = read_jsonl(data)
    for rec, req in zip(recs, reqs, strict=True):  # the very prompt training and predict saw
        sample = render_request(PredictRequest(**req), predictor.manifest)
        assert (sample.system, sample.prompt) == (rec["system"], rec["instruction"])

    with TestClient(create_app(predictor, args)) as client:
        served = client.post("/v1/predict/batch", json={"requests": reqs}).json()["responses"]
        single = client.post("/v1/predict", json=reqs[0]).json()
    assert single["ranked"] == served[0]["ranked"] or all(
        abs(a["prob"] - b["prob"]) < 1e-4 for a, b in zip(single["ranked"], served[0]["ranked"], strict=True)
    )
    for row, ans in zip(offline, served, strict=True):
        assert [x["behavior"] for x in ans["ranked"]] == [x["behavior"] for x in row["ranked"]]
        for a, b in zip(ans["ranked"], row["ranked"], strict=True):
            assert abs(a["prob"] - b["prob"]) < 1e-4
        assert ans["prediction"] == row["prediction"] and ans["short_history"] is False


def test_a_prompt_past_the_model_context_is_422(fixed_order_dataset, tiny_model):
    args = ServeArguments(model=str(tiny_model), stats=str(fixed_order_dataset / "stats.json"), max_length=64)
    predictor = load_predictor(args)
    body = requests_from_features(fixed_order_dataset / "test.features.npz", 1)[0]
    with TestClient(create_app(predictor, args)) as client:
        r = client.post("/v1/predict", json=body)
    assert r.status_code == 422
    (detail,) = r.json()["detail"]
    assert detail["loc"] == ["body", "history"] and "context of 64 tokens" in detail["msg"]
