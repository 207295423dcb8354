import json

import numpy as np
import pytest

from behaviorlm_plugin.data import aux_data


def test_shipped_default_set():
    convs = aux_data.load_conversations()
    assert len(convs) >= 150
    assert all(c["conversations"][0]["from"] == "human" for c in convs)
    kept, dropped = aux_data.filter_by_tokens(convs, 512)
    assert dropped >= 1 and len(kept) >= 150


def test_sharegpt_openai_and_alpaca_inputs(tmp_path):
    sharegpt = tmp_path / "s.json"
    sharegpt.write_text(
        json.dumps([{"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "yo"}]}])
    )
    openai = tmp_path / "o.jsonl"
    openai.write_text(
        json.dumps(
            {
                "messages": [
                    {"role": "system", "content": "be nice"},
                    {"role": "user", "content": "q"},
                    {"role": "assistant", "content": "a"},
                ]
            }
        )
        + "\n"
    )
    alpaca = tmp_path / "a.json"
    alpaca.write_text(json.dumps([{"instruction": "Add", "input": "2+2", "output": "4"}]))
    assert aux_data.load_conversations(sharegpt)[0]["conversations"][1]["value"] == "yo"
    o = aux_data.load_conversations(openai)[0]
    assert o["system"] == "be nice" and [t["from"] for t in o["conversations"]] == ["human", "gpt"]
    assert aux_data.load_conversations(alpaca)[0]["conversations"][0]["value"] == "Add\n2+2"


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"conversations": [{"from": "gpt", "value": "x"}, {"from": "human", "value": "y"}]}, "expected a 'human'"),
        ({"conversations": [{"from": "human", "value": "x"}]}, "ending with gpt"),
        ({"conversations": [{"from": "robot", "value": "x"}]}, "turn 0"),
        ({"text": "hello"}, "neither ShareGPT"),
        ({"conversations": [{"from": "human", "value": " "}, {"from": "gpt", "value": "y"}]}, "empty text"),
    ],
)
def test_bad_records_name_file_and_record(tmp_path, record, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(
        json.dumps({"conversations": [{"from": "human", "value": "ok"}, {"from": "gpt", "value": "ok"}]})
        + "\n"
        + json.dumps(record)
        + "\n"
    )
    with pytest.raises(aux_data.AuxDataError) as err:
        aux_data.load_conversations(path)
    assert str(path) in str(err.value) and "record 1" in str(err.value) and message in str(err.value)


def test_bad_json_line_is_named(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"conversations": []}\n{oops\n')
    with pytest.raises(aux_data.AuxDataError, match="line 2 is not valid JSON"):
        aux_data.load_conversations(path)


def test_token_filter_with_custom_counter():
    convs = [
        {"conversations": [{"from": "human", "value": "a " * n}, {"from": "gpt", "value": "b"}], "system": ""}
        for n in (1, 10, 100)
    ]
    kept, dropped = aux_data.filter_by_tokens(convs, 20, count=lambda s: len(s.split()))
    assert len(kept) == 2 and dropped == 1


def test_exact_ratio_and_repeats():
    assert aux_data.aux_count(1000, 0.05) == 50
    assert aux_data.aux_count(30, 0.05) == 2  # 1.5 rounds half up
    pool = [{"conversations": [], "i": i} for i in range(3)]
    picked, repeats = aux_data.pick_aux(pool, 7, np.random.default_rng(0))
    assert len(picked) == 7 and repeats == 2
    picked, repeats = aux_data.pick_aux(pool, 2, np.random.default_rng(0))
    assert len({p["i"] for p in picked}) == 2 and repeats == 0
    with pytest.raises(aux_data.AuxDataError, match="no auxiliary conversations"):
        aux_data.pick_aux([], 1, np.random.default_rng(0))
