import numpy as np
import pandas as pd
import pytest

from behaviorlm_plugin.data import prompts
from behaviorlm_plugin.data.samples import encode_events, history_indices, window_targets


@pytest.fixture
def enc():
    ts = pd.date_range("2024-03-01 08:00", periods=6, freq="h")  # a Friday
    df = pd.DataFrame(
        {
            "user_id": "u1",
            "timestamp": ts,
            "place": ["home", "work"] * 3,
            "behavior": ["Gaming", "Cooking", "Payment", "Gaming", "Cooking", "Payment"],
        }
    )
    return encode_events(df)


def _render(enc, seed=0, **kw):
    t = window_targets(enc.user, 3)
    return prompts.render_prompts(
        enc, t, history_indices(t, 3), np.random.default_rng(seed), prompts.PromptOptions(**kw)
    )


def test_history_next_and_candidates_are_rendered(enc):
    texts, fmts, cands = _render(enc, formats=("instruct1",))
    first = texts[0]
    assert "(Fri, 8, home, Gaming), (Fri, 9, work, Cooking), (Fri, 10, home, Payment)" in first
    assert "(Fri, 11, work)" in first  # next event's day, hour, place
    assert ", ".join(cands[0]) in first
    assert sorted(cands[0]) == ["Cooking", "Gaming", "Payment"]
    assert fmts == ["instruct1"] * 3
    assert first.startswith("This user has done behaviors") and first.endswith("The answer is")


def test_format_and_order_are_random_per_sample_but_seeded(enc):
    a = _render(enc, seed=5)
    assert a == _render(enc, seed=5)
    big = prompts.PromptOptions()
    assert set(big.formats) == {"instruct1", "instruct2", "instruct3"}
    fixed = _render(enc, shuffle_candidates=False)[2]
    assert all(c == ["Cooking", "Gaming", "Payment"] for c in fixed)


def test_formats_drawn_roughly_uniformly():
    ts = pd.date_range("2024-03-01", periods=400, freq="h")
    df = pd.DataFrame({"user_id": "u", "timestamp": ts, "place": "home", "behavior": ["a", "b"] * 200})
    e = encode_events(df)
    t = window_targets(e.user, 2)
    _, fmts, _ = prompts.render_prompts(e, t, history_indices(t, 2), np.random.default_rng(0))
    counts = pd.Series(fmts).value_counts()
    assert len(counts) == 3 and counts.min() > 90


def test_custom_format_registration(enc, tmp_path):
    prompts.register_prompt_format(
        name="terse_test",
        template="H: {% for e in events %}{{ e.behavior }};{% endfor %} N: {{ next }} C: {{ candidates }} ->",
        overwrite=True,
    )
    texts, _, _ = _render(enc, formats=("terse_test",))
    assert texts[0].startswith("H: Gaming;Cooking;Payment; N: (Fri, 11, work)")
    with pytest.raises(ValueError, match="already registered"):
        prompts.register_prompt_format(name="terse_test", template="{{ history }}{{ next }}{{ candidates }}")
    with pytest.raises(ValueError, match=r"never uses \['candidates'\]"):
        prompts.register_prompt_format(name="bad_one", template="{{ history }} {{ next }}")
    with pytest.raises(ValueError, match="syntax error"):
        prompts.register_prompt_format(name="bad_two", template="{{ history ")
    path = tmp_path / "mine.j2"
    path.write_text("{{ history }} | {{ next }} | {{ candidates }} =")
    assert prompts.load_prompt_format_file(str(path), overwrite=True) == "mine"
    assert "mine" in prompts.available_formats()
    with pytest.raises(ValueError, match="unknown prompt format"):
        _render(enc, formats=("nope",))


def test_system_prompt_is_role_play_and_task():
    s = prompts.system_prompt()
    assert "smart mobile assistant" in s and "next behavior" in s
