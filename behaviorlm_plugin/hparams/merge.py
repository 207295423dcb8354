"""How the sources of one config merge into one mapping before it is typed: YAML < ``--set`` < flags, per key.

Each source's moved keys (a class's ``MOVED``: old name -> new dotted place) are put in their new places first, with
a warning, so a later source still wins over an earlier one whatever spelling each used; the old and the new
spelling of one key in the same source is an error. A block with a ``SHORTHAND`` field takes a bare value for it,
and a dotted override below a bare value, or a bare value over a block, changes only what it names.
"""

from __future__ import annotations

import warnings
from typing import Any

from behaviorlm_plugin.hparams.fields import block_type, is_dataclass_type, type_hints, user_fields
from behaviorlm_plugin.hparams.sources import CliText, ConfigError


class MovedKeyWarning(FutureWarning):
    """A config key that moved: it still loads, into its new place; the message names the new key."""


def _set_path(d: dict, dotted: str, value: Any) -> None:
    head, _, rest = dotted.partition(".")
    if not rest:
        d.setdefault(head, value)
        return
    sub = dict(d.get(head) or {})
    _set_path(sub, rest, value)
    d[head] = sub


def canonical_key(cls: type, dotted: str, *, where: str, prefix: str = "") -> str:
    """``dotted`` with every moved key (``MOVED``, at any depth) replaced by its new path, with a warning
    (``prefix``: where ``cls`` sits in the whole config, for the message)."""
    parts, out, node = dotted.split("."), [], cls
    head = [p for p in prefix.split(".") if p]
    i = 0
    while i < len(parts):
        key = parts[i]
        moved: dict[str, str] = getattr(node, "MOVED", {}) if node is not None else {}
        names = {f.name for f in user_fields(node)} if node is not None else set()
        if key in moved and key not in names:
            new = moved[key]
            old_name, new_name = ".".join([*head, *out, key]), ".".join([*head, *out, new])
            warnings.warn(
                f"{where}: {old_name}: this key moved to '{new_name}'; it still loads, but write '{new_name}'",
                MovedKeyWarning,
                stacklevel=3,
            )
            parts[i : i + 1] = new.split(".")
            continue
        out.append(key)
        node = block_type(type_hints(node).get(key)) if node is not None and key in names else None
        i += 1
    return ".".join(out)


def normalize_source(cls: type, raw: dict, *, where: str, prefix: str = "") -> dict:
    """One source's mapping with its moved keys in their new places (so a later source still wins over them); an
    old and a new spelling of one key in the same source is an error, not a silent choice."""
    if not isinstance(raw, dict):
        return raw
    out = dict(raw)
    moved: dict[str, str] = getattr(cls, "MOVED", {})
    names = {f.name for f in user_fields(cls)}
    for old in [k for k in out if k in moved and k not in names]:
        value = out.pop(old)
        new = canonical_key(cls, old, where=where, prefix=prefix)
        if _get_path(out, new) is not None:
            raise ConfigError(f"{where}: {prefix}{old} and {prefix}{new} are one key (it moved); give only {new}")
        typed_set(cls, out, new, value, where=where)
    hints = type_hints(cls)
    for key, value in list(out.items()):
        sub = block_type(hints.get(key)) if key in names else None
        if sub is not None and isinstance(value, dict):
            out[key] = normalize_source(sub, value, where=where, prefix=f"{prefix}{key}.")
    return out


def _get_path(d: dict, dotted: str) -> Any:
    node: Any = d
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def typed_set(cls: type, raw: dict, dotted: str, value: Any, *, where: str) -> None:
    """``raw[dotted] = value`` knowing the blocks: a bare value at a block with a ``SHORTHAND`` field sets that
    field only (the block's other keys stay), and a key below a block given as a bare value first turns the bare
    value into ``{SHORTHAND: value}``."""
    node, block = raw, cls
    parts = dotted.split(".")
    for part in parts[:-1]:
        sub = block_type(type_hints(block).get(part)) if block is not None else None
        short = getattr(sub, "SHORTHAND", None) if sub is not None else None
        if node.get(part) is None:
            node[part] = {}
        elif short is not None and not isinstance(node[part], dict):
            node[part] = {short: node[part]}
        node = node[part]
        if not isinstance(node, dict):
            raise ConfigError(f"{where}: {part!r} is not a mapping")
        block = sub
    last = parts[-1]
    sub = block_type(type_hints(block).get(last)) if block is not None else None
    short = getattr(sub, "SHORTHAND", None) if sub is not None else None
    if short is not None and isinstance(node.get(last), dict) and not isinstance(value, dict):
        node[last] = {**node[last], short: value}
    else:
        node[last] = value


def merge_sources(cls: type, yaml_raw: dict, sets: list[str], flags: dict[str, Any], *, where: str) -> dict:
    """YAML < ``--set`` < flags, per key, each source's moved keys first put in their new places."""
    raw = normalize_source(cls, yaml_raw, where=where)
    for item in sets:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected key=value, e.g. --set selection.k=10")
        key, value = item.split("=", 1)
        key = canonical_key(cls, key.strip(), where="--set")
        typed_set(cls, raw, key, CliText(value), where=f"--set {key}")
    for key, value in flags.items():
        new = canonical_key(cls, key, where=f"--{key}")
        typed_set(cls, raw, new, value, where=f"--{key}")
    return raw


def shorthand_fields(cls: type, prefix: str = "") -> dict[str, str]:
    """``{"block.field": "block"}`` for every nested block with a ``SHORTHAND`` field."""
    out = {}
    hints = type_hints(cls)
    for f in user_fields(cls):
        sub = block_type(hints[f.name])
        if sub is None:
            continue
        if getattr(sub, "SHORTHAND", None):
            out[f"{prefix}{f.name}.{sub.SHORTHAND}"] = f"{prefix}{f.name}"
        out.update(shorthand_fields(sub, f"{prefix}{f.name}."))
    return out


def moved_keys(cls: type, prefix: str = "") -> list[str]:
    """Dotted names of every ``MOVED`` key of ``cls`` and its nested blocks."""
    out = [f"{prefix}{k}" for k in getattr(cls, "MOVED", {})]
    hints = type_hints(cls)
    for f in user_fields(cls):
        if is_dataclass_type(hints[f.name]):
            out += moved_keys(hints[f.name], f"{prefix}{f.name}.")
    return out


def reissue(caught: list[warnings.WarningMessage]) -> None:
    for w in caught:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
