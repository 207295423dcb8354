"""Instruction prompts: the paper's three formats as Jinja2 templates, plus your own.

A template receives compact pre-rendered strings (fast to render, easy to write):

* ``history``    -- ``(Fri, 16, home, Exercising), (Fri, 20, home, Gaming), …`` oldest first
* ``next``       -- ``(Fri, 21, home)``: day of week, hour and place of the next event
* ``candidates`` -- ``Gaming, Cooking, …``: every behavior, in the sample's order

and the structured values ``events`` (list of dicts with day/hour/place/behavior),
``next_event`` (dict) and ``candidate_list`` (list) for templates that want them.
The answer (training target) is the behavior label exactly as it appears in the
candidate set, so scoring can compare it token for token.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

import jinja2
import jinja2.meta
import jinja2.nodes
import numpy as np

from behaviorlm_plugin.data.samples import EncodedEvents, sorted_unique

DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
BUILTIN_FORMATS = ("instruct1", "instruct2", "instruct3")
"""The paper's three formats (the default ``prompt_formats``)."""
SHIPPED_FORMATS = (*BUILTIN_FORMATS, "compact")
"""Also shipped: ``compact``, the same facts with no wording around them ("History: Fri 12h school: Studying for
course; … Candidates: …. Next: Sat 2h mall:"), for small models, which the paper's wording can hide the context
from (docs/results/cpu-main/pilot/)."""
# A format must show each of these, through the string or the structured variable.
REQUIRED_VARIABLES = {
    "history": ("history", "events"),
    "next": ("next", "next_event"),
    "candidates": ("candidates", "candidate_list"),
}

_ENV = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=False)
_FORMATS: dict[str, jinja2.Template] = {}
_USES_EVENTS: set[str] = set()  # formats that iterate ``events`` (only those get the dicts built)
_PLAIN: dict[str, str] = {}  # formats that only print the three strings: their text as a str.format pattern
PLAIN_VARIABLES = ("history", "next", "candidates")


def _plain_pattern(text: str) -> str | None:
    """``text`` as a ``str.format`` pattern when it is only literal text and ``{{ history }}``, ``{{ next }}``,
    ``{{ candidates }}`` (no filters, tests or loops): then the pattern gives exactly what Jinja renders,
    without a Jinja context per sample.  None for any other template (it is rendered by Jinja)."""
    for node in _ENV.parse(text).body:
        if not isinstance(node, jinja2.nodes.Output):
            return None
        for child in node.nodes:
            plain = isinstance(child, jinja2.nodes.TemplateData)
            if not plain and not (isinstance(child, jinja2.nodes.Name) and child.name in PLAIN_VARIABLES):
                return None
    marks = {v: f"\x00{i}\x00" for i, v in enumerate(PLAIN_VARIABLES)}
    rendered = _ENV.from_string(text).render(marks)
    if rendered.count("\x00") != 2 * sum(rendered.count(m) for m in marks.values()):
        return None  # the template's own text holds the marker character: leave it to Jinja
    pattern = rendered.replace("{", "{{").replace("}", "}}")
    for v, mark in marks.items():
        pattern = pattern.replace(mark, "{" + v + "}")
    return pattern


def _add_format(name: str, text: str) -> None:
    _FORMATS[name] = _ENV.from_string(text)
    pattern = _plain_pattern(text)
    if pattern is None:
        _PLAIN.pop(name, None)
    else:
        _PLAIN[name] = pattern


def _builtin_text(name: str) -> str:
    return resources.files("behaviorlm_plugin").joinpath("templates", f"{name}.j2").read_text("utf-8")


def register_prompt_format(*, name: str, template: str, overwrite: bool = False) -> None:
    """Add an instruction format (a Jinja2 template string) under ``name``.

    The template must show the history (``history`` or ``events``), the next event
    (``next`` or ``next_event``) and the candidates (``candidates`` or
    ``candidate_list``); a name already
    taken is refused unless ``overwrite=True``.
    """
    if not isinstance(name, str) or not name.strip() or not name.replace("_", "").replace("-", "").isalnum():
        raise ValueError(f"prompt format name must be a non-empty identifier, got {name!r}")
    _ensure_builtins()
    if name in _FORMATS and not overwrite:
        raise ValueError(f"prompt format {name!r} is already registered; pass overwrite=True to replace it")
    try:
        parsed = _ENV.parse(template)
    except jinja2.TemplateSyntaxError as err:
        raise ValueError(f"prompt format {name!r}: template syntax error on line {err.lineno}: {err}") from err
    variables = jinja2.meta.find_undeclared_variables(parsed)
    missing = {key for key, names in REQUIRED_VARIABLES.items() if not variables.intersection(names)}
    if missing:
        raise ValueError(
            f"prompt format {name!r} never uses {sorted(missing)}; a format must show the history, "
            "the next event's context and the candidates ({{ history }}, {{ next }}, {{ candidates }})"
        )
    _add_format(name, template.strip())
    if "events" in variables:
        _USES_EVENTS.add(name)
    else:
        _USES_EVENTS.discard(name)


def load_prompt_format_file(path: str, *, name: str | None = None, overwrite: bool = False) -> str:
    """Register a ``.j2`` file as a format (named after the file unless ``name``)."""
    from pathlib import Path

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: prompt template file not found")
    fmt_name = name or p.stem
    try:
        register_prompt_format(name=fmt_name, template=p.read_text("utf-8"), overwrite=overwrite)
    except ValueError as err:
        raise ValueError(f"{p}: {err}") from err
    return fmt_name


def _ensure_builtins() -> None:
    if not _FORMATS:
        for name in SHIPPED_FORMATS:
            text = _builtin_text(name).strip()
            _add_format(name, text)
            if "events" in jinja2.meta.find_undeclared_variables(_ENV.parse(text)):
                _USES_EVENTS.add(name)


def available_formats() -> tuple[str, ...]:
    _ensure_builtins()
    return tuple(_FORMATS)


def system_prompt() -> str:
    """The role-playing + task-definition text, sent as the system message."""
    return _builtin_text("system").strip()


@dataclass(frozen=True)
class PromptOptions:
    formats: tuple[str, ...] = BUILTIN_FORMATS
    shuffle_candidates: bool = True  # paper: random order; False = fixed vocabulary order


def _event_texts(enc: EncodedEvents, used: np.ndarray, days, places, behaviors) -> np.ndarray:
    """``(Fri, 16, home, Exercising)`` of the events ``used`` (an object array over all events).

    Each distinct (day, hour, place, behavior) is formatted once and shared: the windows of a large log hold
    millions of events but at most 7 x 24 x places x behaviors combinations."""
    out = np.empty(len(enc), dtype=object)
    if len(used) == 0:
        return out
    dow, hour, place, behavior = (a[used].astype(np.int64) for a in (enc.dow, enc.hour, enc.place, enc.behavior))
    n_hour, n_place, n_behavior = int(hour.max()) + 1, len(places), len(behaviors)
    code = ((dow * n_hour + hour) * n_place + place) * n_behavior + behavior
    combos = sorted_unique(code)
    b, rest = combos % n_behavior, combos // n_behavior
    p, rest = rest % n_place, rest // n_place
    h, d = rest % n_hour, rest // n_hour
    texts = "(" + days[d] + ", " + h.astype(str).astype(object) + ", " + places[p] + ", " + behaviors[b] + ")"
    out[used] = texts[np.searchsorted(combos, code)]
    return out


def _jinja_context(enc: EncodedEvents, t: int, hist_rows, strings: tuple, cand: list, events: bool, labels) -> dict:
    days, places, behaviors = labels
    return {
        "history": strings[0],
        "next": strings[1],
        "candidates": strings[2],
        "events": [
            {
                "day": days[enc.dow[j]],
                "hour": int(enc.hour[j]),
                "place": places[enc.place[j]],
                "behavior": behaviors[enc.behavior[j]],
            }
            for j in hist_rows
        ]
        if events
        else [],
        "next_event": {"day": days[enc.dow[t]], "hour": int(enc.hour[t]), "place": places[enc.place[t]]},
        "candidate_list": cand,
    }


def render_prompts(
    enc: EncodedEvents,
    targets: np.ndarray,
    history: np.ndarray,
    rng: np.random.Generator,
    options: PromptOptions = PromptOptions(),
) -> tuple[list[str], list[str], list[list[str]]]:
    """Render one prompt per target event.

    Returns (prompts, format name per sample, candidate list per sample).  The
    format and candidate order are drawn from ``rng`` per sample, so the same seed
    gives the same prompts.
    """
    _ensure_builtins()
    unknown = [f for f in options.formats if f not in _FORMATS]
    if unknown:
        raise ValueError(f"unknown prompt format(s) {unknown}; available: {list(_FORMATS)}")
    labels = (np.array(DAY_NAMES, dtype=object), np.array(enc.places, dtype=object))
    labels += (np.array(enc.behaviors, dtype=object),)
    days, places, behaviors = labels
    targets = np.asarray(targets, dtype=np.int64)
    # Each event's text once, then joined per sample (no per-event Python in the hot path).
    ev_text = _event_texts(enc, sorted_unique(np.concatenate([history.ravel(), targets])), *labels)
    n = len(targets)
    fmt_idx = rng.integers(0, len(options.formats), size=n)
    n_b = len(behaviors)
    orders = np.argsort(rng.random((n, n_b)), axis=1) if options.shuffle_candidates else np.tile(np.arange(n_b), (n, 1))
    cands = behaviors[orders].tolist() if n else []
    hist_text = [", ".join(row) for row in ev_text[history].tolist()] if n else []
    next_text = "(" + days[enc.dow[targets]] + ", " + enc.hour[targets].astype(str).astype(object) + ", "
    next_text = (next_text + places[enc.place[targets]] + ")").tolist()
    plain = [_PLAIN.get(f) for f in options.formats]
    prompts = []
    for i in range(n):
        f = fmt_idx[i]
        strings = (hist_text[i], next_text[i], ", ".join(cands[i]))
        if plain[f] is not None:
            prompts.append(plain[f].format(history=strings[0], next=strings[1], candidates=strings[2]))
            continue
        events = options.formats[f] in _USES_EVENTS
        context = _jinja_context(enc, targets[i], history[i], strings, cands[i], events, labels)
        prompts.append(_FORMATS[options.formats[f]].render(context))
    fmt_names = [options.formats[f] for f in fmt_idx.tolist()]
    return prompts, fmt_names, cands
