"""Adapter to the reference engine, kapicorp-reclass (a test dependency only)."""

from __future__ import annotations

import contextlib
import io
import os
import sys
import threading
from typing import Any

import yaml


def reference_nodeinfo_deep(model_dir: str) -> dict[str, dict[str, Any] | str]:
    """:func:`reference_nodeinfo` with room for deep recursion.

    kapicorp-reclass resolves references recursively (several frames per reference), so a
    chain of a few hundred exceeds Python's default recursion limit. This runs it in a
    thread with a large stack and a raised limit (restored afterwards).
    """
    result: list[dict[str, dict[str, Any] | str]] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            result.append(reference_nodeinfo(model_dir))
        except BaseException as e:  # re-raised in the caller's thread
            failure.append(e)

    old_limit = sys.getrecursionlimit()
    old_stack = threading.stack_size(512 * 1024 * 1024)
    sys.setrecursionlimit(200_000)
    try:
        thread = threading.Thread(target=run)
        thread.start()
        thread.join()
    finally:
        sys.setrecursionlimit(old_limit)
        threading.stack_size(old_stack)
    if failure:
        raise failure[0]
    return result[0]


def reference_nodeinfo(model_dir: str) -> dict[str, dict[str, Any] | str]:
    """Compile every node with kapicorp-reclass: node -> nodeinfo dict, or the error's type."""
    import reclass
    from reclass.core import Core
    from reclass.settings import Settings

    cfg_path = os.path.join(model_dir, "reclass-config.yml")
    options: dict[str, Any] = {}
    if os.path.exists(cfg_path):
        with open(cfg_path) as fh:
            options = yaml.safe_load(fh) or {}
    nodes_uri = os.path.join(model_dir, options.pop("nodes_uri", "nodes"))
    classes_uri = os.path.join(model_dir, options.pop("classes_uri", "classes"))
    mappings = options.pop("class_mappings", None)
    settings = Settings(options)
    storage = reclass.get_storage("yaml_fs", nodes_uri, classes_uri, settings.compose_node_name)
    core = Core(storage, mappings, settings)
    out: dict[str, dict[str, Any] | str] = {}
    for name in sorted(storage.enumerate_nodes()):
        try:
            with (
                contextlib.redirect_stdout(io.StringIO()),
                contextlib.redirect_stderr(io.StringIO()),
            ):
                out[name] = core.nodeinfo(name)
        except RecursionError:
            out[name] = "RecursionError"
        except Exception as e:
            out[name] = type(e).__name__
    return out
