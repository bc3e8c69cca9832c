"""Model settings: an optional ``reclass-config.yml`` in the model's root.

Option names and defaults are reclass's, so a model written for reclass keeps working.
Validation is written by hand (a table of typed options) instead of with a schema
library: it is twenty flat options, and the model engine's import time matters for
`saline model show` on large models.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from typing import Any

import yaml

from ..errors import ConfigError, Location

CONFIG_NAME = "reclass-config.yml"

# Options reclass's command line reads from the same file that do not change how a
# model compiles (output style, storage selection). Accepted and ignored.
_IGNORED = {
    "storage_type",
    "inventory_base_uri",
    "output",
    "pretty_print",
    "no_refs",
    "group_errors",
    "ignore_class_notfound_warning",
    "inventory_ignore_failed_node",
}


@dataclass(frozen=True)
class ModelConfig:
    """How a model compiles. Every field is a reclass option of the same name."""

    #: Folder of node files, relative to the model root.
    nodes_uri: str = "nodes"
    #: Folder of class files, relative to the model root.
    classes_uri: str = "classes"
    #: Name nodes after their path (``nodes/a/b.yml`` -> ``a.b``) instead of the file name.
    compose_node_name: bool = False
    #: Skip classes that do not exist (those matching one of the regexps) instead of failing.
    ignore_class_notfound: bool = False
    ignore_class_notfound_regexp: tuple[str, ...] = (".*",)
    #: "PATTERN class1 class2": nodes whose name matches the glob (or /regexp/) get classes.
    class_mappings: tuple[str, ...] = ()
    #: Match class_mappings against the node's path instead of its name.
    class_mappings_match_path: bool = False
    #: Type-changing merges that are errors unless allowed.
    allow_scalar_over_dict: bool = False
    allow_scalar_over_list: bool = False
    allow_list_over_scalar: bool = False
    allow_dict_over_scalar: bool = False
    allow_none_override: bool = False
    #: Add ``_reclass_`` parameters (node name parts, environment) to every node.
    automatic_parameters: bool = True
    default_environment: str = "base"
    #: Changing a value declared with ``=key`` is an error (else the change is ignored).
    strict_constant_parameters: bool = True
    #: A missing reference in a value that a later value replaces is not an error.
    ignore_overwritten_missing_references: bool = True
    #: A query whose exported value fails to render skips that node instead of failing.
    inventory_ignore_failed_render: bool = False
    extra: dict[str, Any] = field(default_factory=dict, compare=False)


def _field_types() -> dict[str, Any]:
    return {f.name: f.default for f in fields(ModelConfig) if f.name != "extra"}


def load_config(model_dir: str) -> ModelConfig:
    """Read ``reclass-config.yml`` from the model root, or return defaults if absent."""
    path = os.path.join(model_dir, CONFIG_NAME)
    if not os.path.exists(path):
        return ModelConfig()
    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except yaml.MarkedYAMLError as e:
        line = e.problem_mark.line + 1 if e.problem_mark else None
        raise ConfigError(f"invalid YAML: {e.problem}", Location(CONFIG_NAME, line)) from e
    except yaml.YAMLError as e:
        raise ConfigError(f"invalid YAML: {e}", Location(CONFIG_NAME)) from e
    if data is None:
        return ModelConfig()
    if not isinstance(data, dict):
        raise ConfigError("must be a mapping of option: value", Location(CONFIG_NAME))
    return config_from_mapping(data)


def config_from_mapping(data: dict[str, Any]) -> ModelConfig:
    defaults = _field_types()
    values: dict[str, Any] = {}
    for key, value in data.items():
        key = str(key)
        if key in _IGNORED:
            continue
        if key not in defaults:
            known = ", ".join(sorted([*defaults, *_IGNORED]))
            raise ConfigError(
                f"unknown option (known options: {known})", Location(CONFIG_NAME, key=key)
            )
        default = defaults[key]
        if isinstance(default, bool):
            if not isinstance(value, bool):
                raise ConfigError(
                    f"must be true or false, not {value!r}", Location(CONFIG_NAME, key=key)
                )
        elif isinstance(default, tuple):
            if isinstance(value, str):
                value = (value,)
            if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
                raise ConfigError("must be a list of strings", Location(CONFIG_NAME, key=key))
            value = tuple(value)
        elif not isinstance(value, str):
            raise ConfigError(f"must be a string, not {value!r}", Location(CONFIG_NAME, key=key))
        values[key] = value
    return ModelConfig(**values)
