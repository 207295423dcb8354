"""The one argument parser: YAML files, ``--set key=value`` and flags, into typed dataclasses.

Precedence, lowest first (later wins, per key)::

    dataclass defaults  <  the YAML file  <  --set a.b=c  <  --a.b c  (a generated flag)

Every command goes through :func:`parse_cli` or :func:`load_config`; nested blocks are nested
dataclasses, built by :func:`build` with these guarantees:

* an unknown key fails with the file, the dotted key and the known keys (and a close match);
* a renamed key fails with its new name (each class lists its renames in ``RENAMED``);
* a moved key still loads, into its new place, with a warning that names the new key (``MOVED``: old
  configs, exports and result files keep working);
* a block with a ``SHORTHAND`` field takes a bare value for that field (``prior_correction: auto`` is
  ``prior_correction: {alpha: auto}``), and gets a flag of its own name for it (``--prior-correction``);
* a value of the wrong type fails with the key and the expected type;
* ``__post_init__`` checks run as the object is built, so a bad value fails before any work.

Flags are generated from the fields (dotted for nested blocks: ``--selection.k 10``), with the
field's ``help``; ``--dataset-dir`` and ``--dataset_dir`` both work, as in LLaMA-Factory.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import types
import warnings
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

from behaviorlm_plugin.hparams.fields import field_names, is_dataclass_type, type_hints, user_fields
from behaviorlm_plugin.hparams.merge import (
    MovedKeyWarning,
    canonical_key,
    merge_sources,
    moved_keys,
    normalize_source,
    reissue,
    shorthand_fields,
)
from behaviorlm_plugin.hparams.sources import (
    CliText,
    ConfigError,
    apply_sets,
    read_yaml_mapping,
    yaml_value,
)

T = TypeVar("T")

__all__ = [
    "ConfigError",
    "MovedKeyWarning",
    "apply_sets",
    "build",
    "coerce",
    "load_config",
    "parse_cli",
    "read_yaml_mapping",
]


def _type_name(tp: Any) -> str:
    if get_origin(tp) is Literal:
        return " | ".join(repr(a) for a in get_args(tp))
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _plain(value: Any) -> Any:
    """Free-form values (LLaMA-Factory overrides, grids): command-line text read as YAML, recursively."""
    if isinstance(value, CliText):
        return yaml_value(str(value))
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _number(value: Any, kind: type) -> Any:
    """A number from text too: YAML 1.1 reads ``1e-3`` as a string, and flags are text."""
    if isinstance(value, str):
        try:
            return kind(value.strip())
        except ValueError:
            return value
    return value


def coerce(value: Any, tp: Any, key: str) -> Any:
    """``value`` checked (and, where lossless, converted) to the annotation ``tp``."""
    origin = get_origin(tp)
    if tp is Any:
        return _plain(value)
    if origin in (Union, types.UnionType):
        options = get_args(tp)
        if type(None) in options and (value is None or (isinstance(value, str) and value.lower() in ("none", "null"))):
            return None  # a flag's "None" (the docs' spelling) or YAML's null
        if isinstance(value, CliText) and str in options:
            return str(value)
        for option in options:
            if option is type(None):
                continue
            try:
                return coerce(value, option, key)
            except ConfigError:
                continue
        raise ConfigError(f"{key}: expected {' or '.join(_type_name(o) for o in options)}, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return str(value)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)  # e.g. a model id or seed-like name that YAML read as a number
        raise ConfigError(f"{key}: expected a string, got {value!r}")
    if origin in (list, tuple):
        if isinstance(value, CliText):
            text = str(value).strip()
            value = (
                yaml_value(text) if text.startswith("[") else [CliText(v.strip()) for v in text.split(",") if v.strip()]
            )
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        (item,) = get_args(tp)[:1] or (Any,)
        items = [coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
        return items if origin is list else tuple(items)
    if isinstance(value, CliText):
        if tp in (int, float):
            value = _number(str(value), tp)
        elif origin is Literal and all(isinstance(c, str) for c in get_args(tp)):
            value = str(value)
        else:
            value = yaml_value(str(value))
    if origin is Literal:
        if value not in get_args(tp):
            raise ConfigError(f"{key}: must be one of {', '.join(map(str, get_args(tp)))}; got {value!r}")
        return value
    if is_dataclass_type(tp):
        return value if isinstance(value, tp) else _build(tp, value, prefix=f"{key}.")
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        args = get_args(tp)
        return {k: coerce(v, args[1], f"{key}.{k}") for k, v in value.items()} if args else _plain(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    if tp is int:
        value = _number(value, int)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"{key}: expected an integer, got {value!r}")
    if tp is float:
        value = _number(value, float)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{key}: expected a number, got {value!r}")
    return value


def build(cls: type[T], raw: Any, *, where: str, context: dict | None = None) -> T:
    """A ``cls`` from a mapping of user keys, checked key by key (see the module docstring).

    ``where`` (a file, or "arguments") starts every error message, followed by the dotted key.
    ``context`` sets ``internal`` fields (never user keys). A class may define
    ``__prebuild__(raw, prefix) -> raw`` to resolve its block before typing (e.g. variants that
    inherit the suite's defaults).
    """
    # Moved keys (at any depth) go to their new places first, warning with ``where``: one mechanism for a config
    # file's sources (merge_sources, so this is a no-op there) and for a mapping built directly.
    raw = normalize_source(cls, raw, where=where)
    try:
        return _build(cls, raw, prefix="", context=context)
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from err


def _build(cls: type[T], raw: Any, *, prefix: str, context: dict | None = None) -> T:
    label = prefix.rstrip(".") or "top level"
    if isinstance(raw, cls):
        return raw
    if raw is None:
        raw = {}
    shorthand: str | None = getattr(cls, "SHORTHAND", None)
    if shorthand is not None and not isinstance(raw, dict):
        raw = {shorthand: raw}  # a bare value is the block's SHORTHAND field
    if not isinstance(raw, dict):
        raise ConfigError(f"{label}: expected a mapping of keys to values, got {type(raw).__name__} {raw!r:.80}")
    raw = dict(raw)
    renamed: dict[str, str] = getattr(cls, "RENAMED", {})
    fields = {f.name: f for f in user_fields(cls)}
    hints = type_hints(cls)
    for key in list(raw):
        if key in renamed and key not in fields:
            raise ConfigError(f"{prefix}{key}: this key was renamed; use '{renamed[key]}' instead")
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ConfigError(f"{prefix}{key}: unknown key{hint}; known keys: {', '.join(sorted(fields))}")
    try:
        prebuild = getattr(cls, "__prebuild__", None)
        if prebuild is not None:
            raw = prebuild(raw, prefix)
        kwargs = {k: coerce(v, hints[k], f"{prefix}{k}") for k, v in raw.items()}
        kwargs.update(context or {})
        missing = [
            n
            for n, f in fields.items()
            if n not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        ]
        if missing:
            raise ConfigError(f"{label}: missing required key(s) {', '.join(missing)}")
        return cls(**kwargs)
    except ConfigError:
        raise
    except (ValueError, TypeError) as err:
        raise ConfigError(f"{label}: {err}" if prefix else str(err)) from err


def load_config(cls: type[T], path: str | Path, sets: list[str] | None = None) -> T:
    """A config file's dataclass, with ``--set`` items on top."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", MovedKeyWarning)
        raw = merge_sources(cls, read_yaml_mapping(path), sets or [], {}, where=str(path))
    reissue(caught)
    context = {"base_dir": str(Path(path).parent)} if "base_dir" in field_names(cls) else {}
    if "source" in field_names(cls):
        context["source"] = str(path)
    return build(cls, raw, where=str(path), context=context)


# ----------------------------------------------------------------------------- flags
def flag_fields(cls: type, prefix: str = "") -> list[tuple[str, dataclasses.Field, Any]]:
    """(dotted name, field, type) for every scalar or list field, nested blocks flattened."""
    out = []
    hints = type_hints(cls)
    for f in user_fields(cls):
        tp = hints[f.name]
        inner = [a for a in get_args(tp) if a is not type(None)] if get_origin(tp) in (Union, types.UnionType) else []
        sub = tp if is_dataclass_type(tp) else (inner[0] if len(inner) == 1 and is_dataclass_type(inner[0]) else None)
        if sub is not None:
            out += flag_fields(sub, f"{prefix}{f.name}.")
        elif get_origin(tp) is dict or tp is dict or (get_origin(tp) is list and is_dataclass_type(get_args(tp)[0])):
            continue  # free-form mappings and lists of blocks come from YAML or --set
        else:
            out.append((prefix + f.name, f, tp))
    return out


def _default_text(f: dataclasses.Field) -> str:
    if f.default is not dataclasses.MISSING:
        return f" (default: {f.default})"
    if f.default_factory is not dataclasses.MISSING:
        return f" (default: {f.default_factory()})"
    return " (required)"


def add_flags(parser: argparse.ArgumentParser, cls: type, *, group_title: str | None = None) -> None:
    """One ``--name`` (and ``--name-with-dashes``) flag per field; unset flags stay absent."""
    group = parser.add_argument_group(group_title) if group_title else parser
    short = shorthand_fields(cls)
    for name, f, tp in flag_fields(cls):
        names = [f"--{name}"]
        if name in short:  # --block VALUE sets the block's SHORTHAND field (--prior-correction auto)
            names.append(f"--{short[name]}")
        names += [f"--{n[2:].replace('_', '-')}" for n in names if "_" in n]
        kw: dict[str, Any] = {
            "dest": f"cfg:{name}",
            "default": argparse.SUPPRESS,
            "metavar": name.split(".")[-1].upper(),
        }
        words = _bool_words(tp)
        if words is not None:  # --synthetic alone is true; --synthetic canary gives the word
            kw.update(nargs="?", const="true", metavar="|".join(("BOOL", *words)))
        choices = get_args(tp) if get_origin(tp) is Literal else ("true", "false", *words) if words else None
        help_text = f.metadata.get("help", "") + (f" Choices: {', '.join(map(str, choices))}." if choices else "")
        group.add_argument(*names, help=help_text + _default_text(f), **kw)
    types_by_name = {name: tp for name, _, tp in flag_fields(cls)}
    for old in moved_keys(cls):  # the flags of moved keys still parse, as their new key's flag does
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MovedKeyWarning)
            new = canonical_key(cls, old, where="")
        names = [f"--{old}"] + ([f"--{old.replace('_', '-')}"] if "_" in old else [])
        extra: dict[str, Any] = {"nargs": "?", "const": "true"} if types_by_name.get(new) is bool else {}
        group.add_argument(*names, dest=f"cfg:{old}", default=argparse.SUPPRESS, help=argparse.SUPPRESS, **extra)


def _bool_words(tp: Any) -> tuple[str, ...] | None:
    """A flag that may stand alone (meaning true): ``()`` for ``bool``, the words for ``bool | Literal[words]``
    (``bool | Literal["canary"]`` -> ``("canary",)``), None for any other type."""
    if tp is bool:
        return ()
    options = get_args(tp) if get_origin(tp) in (Union, types.UnionType) else ()
    rest = [o for o in options if o is not bool]
    if bool not in options or not rest or any(get_origin(o) is not Literal for o in rest):
        return None
    return tuple(str(w) for o in rest for w in get_args(o))


def flags_from_namespace(ns: argparse.Namespace) -> dict[str, Any]:
    """The generated flags the user gave, as dotted key -> YAML-parsed value."""
    return {k.removeprefix("cfg:"): CliText(v) for k, v in vars(ns).items() if k.startswith("cfg:")}


def split_raw(classes: tuple[type, ...], raw: dict, where: str) -> list[dict]:
    """Route each top-level key to the one class that has it (several blocks side by side, as HfArgumentParser)."""
    if len(classes) == 1:
        return [raw]
    parts: list[dict] = [{} for _ in classes]
    for key, value in raw.items():
        owner = [i for i, c in enumerate(classes) if key in {f.name for f in user_fields(c)}]
        if not owner:
            known = sorted({f.name for c in classes for f in user_fields(c)})
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ConfigError(f"{where}: {key}: unknown key{hint}; known keys: {', '.join(known)}")
        parts[owner[0]][key] = value
    return parts


def parse_cli(
    classes: type | tuple[type, ...],
    argv: list[str],
    *,
    prog: str,
    description: str = "",
    extra: Any = None,
    config_file: bool = True,
) -> tuple[Any, argparse.Namespace]:
    """``prog [CONFIG.yaml] [--set k=v ...] [--flag value ...]`` into typed blocks (precedence: module docstring).

    ``classes`` is one dataclass (returns its instance) or a tuple (returns a tuple, one per class, with
    flat flags side by side).  ``extra(parser)`` may add command options that are not configuration;
    they come back in the namespace.
    """
    many = isinstance(classes, tuple)
    classes = classes if many else (classes,)
    parser = argparse.ArgumentParser(prog=prog, description=description)
    if config_file:
        parser.add_argument("config", nargs="?", help="YAML file with the same keys as the flags (optional)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="Override a key, e.g. --set seed=3 (dotted for nested blocks: --set selection.k=10)",
    )
    if extra is not None:
        extra(parser)
    for cls in classes:
        add_flags(parser, cls, group_title=cls.__name__)
    ns = parser.parse_args(argv)
    config = getattr(ns, "config", None)
    raw = read_yaml_mapping(config) if config else {}
    where = source_label(config, ns)
    flags = flags_from_namespace(ns)
    # Route each source's top-level keys to their class first, so moved keys and shorthands resolve per class.
    yaml_parts = split_raw(classes, raw, where)
    set_parts: list[list[str]] = [[] for _ in classes]
    for item in ns.set:
        top = item.split("=", 1)[0].strip().split(".")[0]
        set_parts[_owner(classes, top, where)].append(item)
    flag_parts: list[dict] = [{} for _ in classes]
    for key, value in flags.items():
        flag_parts[_owner(classes, key.split(".")[0], where)][key] = value
    built = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", MovedKeyWarning)
        merged = [
            merge_sources(cls, y, st, fl, where=where)
            for cls, y, st, fl in zip(classes, yaml_parts, set_parts, flag_parts, strict=True)
        ]
    reissue(caught)
    for cls, part in zip(classes, merged, strict=True):
        context = {"base_dir": str(Path(config).parent)} if config and "base_dir" in field_names(cls) else {}
        if config and "source" in field_names(cls):
            context["source"] = str(config)
        built.append(build(cls, part, where=where, context=context))
    return (tuple(built) if many else built[0]), ns


def source_label(config: str | None, ns: argparse.Namespace) -> str:
    """What error messages name as the source: the file, "(with --set/flags)" when they were given, or arguments."""
    where = config or "arguments"
    if config and (ns.set or flags_from_namespace(ns)):
        where = f"{config} (with --set/flags)"
    return where


def _owner(classes: tuple[type, ...], top: str, where: str) -> int:
    """Index of the class that has top-level key ``top`` (or a moved key of that name); the first when none does
    (its build then names the unknown key)."""
    for i, c in enumerate(classes):
        if top in {f.name for f in user_fields(c)} or top in getattr(c, "MOVED", {}):
            return i
    return 0
