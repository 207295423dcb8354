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
import numpy as np

from behaviorlm_plugin.data.samples import EncodedEvents

DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
BUILTIN_FORMATS = ("instruct1", "instruct2", "instruct3")
# A format must show each of these, through the string or the structured variable.
REQUIRED_VARIABLES = {
    "history": ("history", "events"),
    "next": ("next", "next_event"),
    "candidates": ("candidates", "candidate_list"),
}

_ENV = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=False)
_FORMATS: dict[str, jinja2.Template] = {}
_USES_EVENTS: set[str] = set()  # formats that iterate ``events`` (only those get the dicts built)


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
    _FORMATS[name] = _ENV.from_string(template.strip())
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
        for name in BUILTIN_FORMATS:
            _FORMATS[name] = _ENV.from_string(_builtin_text(name).strip())


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
    templates = [_FORMATS[f] for f in options.formats]
    behaviors = np.array(enc.behaviors, dtype=object)
    places = np.array(enc.places, dtype=object)
    days = np.array(DAY_NAMES, dtype=object)

    # Each event's text once, then joined per sample (no per-event Python in the hot path).
    used = np.unique(np.concatenate([history.ravel(), targets]))
    ev_text = np.empty(len(enc), dtype=object)
    ev_text[used] = (
        "("
        + days[enc.dow[used]]
        + ", "
        + enc.hour[used].astype(str).astype(object)
        + ", "
        + places[enc.place[used]]
        + ", "
        + behaviors[enc.behavior[used]]
        + ")"
    )

    n = len(targets)
    fmt_idx = rng.integers(0, len(templates), size=n)
    n_b = len(behaviors)
    orders = np.argsort(rng.random((n, n_b)), axis=1) if options.shuffle_candidates else np.tile(np.arange(n_b), (n, 1))
    prompts, fmt_names, cands = [], [], []
    for i in range(n):
        t = targets[i]
        cand = behaviors[orders[i]].tolist()
        hist_rows = history[i]
        context = {
            "history": ", ".join(ev_text[hist_rows]),
            "next": f"({days[enc.dow[t]]}, {enc.hour[t]}, {places[enc.place[t]]})",
            "candidates": ", ".join(cand),
            "events": [
                {
                    "day": days[enc.dow[j]],
                    "hour": int(enc.hour[j]),
                    "place": places[enc.place[j]],
                    "behavior": behaviors[enc.behavior[j]],
                }
                for j in hist_rows
            ]
            if options.formats[fmt_idx[i]] in _USES_EVENTS
            else [],
            "next_event": {"day": days[enc.dow[t]], "hour": int(enc.hour[t]), "place": places[enc.place[t]]},
            "candidate_list": cand,
        }
        prompts.append(templates[fmt_idx[i]].render(context))
        fmt_names.append(options.formats[fmt_idx[i]])
        cands.append(cand)
    return prompts, fmt_names, cands
