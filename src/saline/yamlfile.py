"""Finding the line of a key in a YAML file, for error messages. Read-only.

Files are parsed into YAML node trees (which keep line numbers) only when a message
needs a line, never on the fast path of loading.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import yaml

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class LineFinder:
    """Caches composed files; ``line(path, keys)`` is the 1-based line of a key path."""

    def __init__(self) -> None:
        self._composed: dict[str, Any] = {}

    def line(self, abspath: str, keys: Sequence[str | int]) -> int | None:
        """Line of ``keys`` in the file; the closest enclosing key's line if not all exist.

        A key written as ``~b`` or ``=b`` (reclass prefixes) matches ``b``.
        """
        node = self._composed.get(abspath)
        if node is None:
            try:
                with open(abspath, "rb") as fh:
                    node = yaml.compose(fh, Loader=_Loader)
            except (OSError, yaml.YAMLError):
                return None
            self._composed[abspath] = node
        line: int | None = None
        for key in keys:
            if isinstance(node, yaml.MappingNode):
                for k, v in node.value:
                    kv = str(k.value)
                    if kv == str(key) or (kv[:1] in "~=" and kv[1:] == str(key)):
                        line, node = k.start_mark.line + 1, v
                        break
                else:
                    return line
            elif isinstance(node, yaml.SequenceNode):
                try:
                    node = node.value[int(key)]
                except (ValueError, IndexError):
                    return line
                line = node.start_mark.line + 1
            else:
                return line
        return line
