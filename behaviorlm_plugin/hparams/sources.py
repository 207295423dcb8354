"""Where raw configuration comes from: YAML files (a mapping, no repeated keys) and command-line text.

Command-line text (a flag or ``--set``) is kept as :class:`CliText`, so the typed layer
(:mod:`behaviorlm_plugin.hparams.parser`) can keep it verbatim for text fields and read it as YAML for
the others.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A bad configuration value or key; the message names the source, the key and the fix."""


class CliText(str):
    """Text typed on the command line (a flag or ``--set``): kept verbatim for text fields, read as YAML
    for the others, so ``--name 0123`` stays ``"0123"`` and ``--seeds 0,1`` becomes ``[0, 1]``."""


def yaml_value(text: str) -> Any:
    """A flag's or --set's text as a YAML scalar/list; text YAML cannot read stays a string (checked later)."""
    if text == "":
        return ""
    try:
        return sci_floats(yaml.safe_load(text))
    except yaml.YAMLError:
        return text


SCI_FLOAT = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$")


def sci_floats(value: Any) -> Any:
    """YAML 1.1 reads ``1e-3`` (no dot) as text; on the command line it is meant as a number."""
    if isinstance(value, str) and SCI_FLOAT.match(value):
        return float(value)
    if isinstance(value, list):
        return [sci_floats(v) for v in value]
    if isinstance(value, dict):
        return {k: sci_floats(v) for k, v in value.items()}
    return value


def apply_sets(raw: dict, sets: list[str], *, where: str = "--set") -> dict:
    """``--set a.b=c`` items over a raw mapping (values parsed as YAML scalars)."""
    out = copy.deepcopy(raw)
    for item in sets:
        if "=" not in item:
            raise ConfigError(f"{where} {item!r}: expected key=value, e.g. --set selection.k=10")
        key, value = item.split("=", 1)
        set_dotted(out, key.strip(), CliText(value), where=f"{where} {key.strip()}")
    return out


def set_dotted(raw: dict, key: str, value: Any, *, where: str) -> None:
    node = raw
    parts = key.split(".")
    for p in parts[:-1]:
        if node.get(p) is None:
            node[p] = {}  # an empty block in the YAML (``selection:``) takes keys like a missing one
        node = node[p]
        if not isinstance(node, dict):
            raise ConfigError(f"{where}: {p!r} is not a mapping")
    node[parts[-1]] = value


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe loader that refuses a key given twice in one mapping (YAML would silently keep the last)."""

    def construct_mapping(self, node, deep=False):
        keys = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in keys:
                raise yaml.constructor.ConstructorError(None, None, f"key {key!r} is given twice", key_node.start_mark)
            keys.add(key)
        return super().construct_mapping(node, deep=deep)


def read_yaml_mapping(path: str | Path) -> dict:
    """A YAML file that must hold a mapping; any other content fails with the file and the fix."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{path}: is a folder; pass the YAML file itself")
    if not path.is_file():
        raise ConfigError(f"{path}: file not found")
    try:
        raw = yaml.load(path.read_text("utf-8"), Loader=_UniqueKeyLoader)
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({str(err).splitlines()[0]}); fix the syntax") from err
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of keys to values at the top level, got {type(raw).__name__}")
    return raw
