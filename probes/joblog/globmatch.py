"""glob.glob(pattern, recursive=True) decided on a list of paths instead of a live file system.

The joblog SSH form lists a remote host's folders with `find` and must pick the files the
agent's tailer would pick with glob.glob. Python 3.11's glob rules, followed here:
- a component with a wildcard (`*`, `?`, `[`) matches one name with fnmatch, case-sensitive,
  and never a name starting with "." unless the component itself starts with ".";
- a component that is exactly `**` matches zero or more names (folders, or anything when it is
  the last component), none of them starting with ".";
- any other component matches its name exactly.
`find_root` says where the listing of a pattern must start and how deep it must go.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Sequence

_MAGIC = re.compile(r"[*?[]")


def has_magic(component: str) -> bool:
    return _MAGIC.search(component) is not None


def _hidden(name: str) -> bool:
    return name.startswith(".")


def _split(path: str) -> list[str]:
    return [part for part in path.split("/") if part]


def _match(parts: Sequence[str], names: Sequence[str], *, prefix: bool) -> bool:
    """Whether `names` match the pattern `parts`; with `prefix`, whether they can begin a match."""
    if not names:
        return prefix or all(part == "**" for part in parts)
    if not parts:
        return False
    head = parts[0]
    if head == "**":
        # Zero names for `**`, or one more (not hidden) name inside it.
        if _match(parts[1:], names, prefix=prefix):
            return True
        return not _hidden(names[0]) and _match(parts, names[1:], prefix=prefix)
    name = names[0]
    if has_magic(head):
        if _hidden(name) and not _hidden(head):
            return False
        if not fnmatch.fnmatchcase(name, head):
            return False
    elif name != head:
        return False
    return _match(parts[1:], names[1:], prefix=prefix)


def _relative(pattern: str, path: str) -> tuple[list[str], list[str]] | None:
    """Pattern and path split into components; None when only one of them is absolute."""
    absolute = pattern.startswith("/")
    if absolute != path.startswith("/"):
        return None
    return _split(pattern), _split(path)


def glob_matches(pattern: str, path: str) -> bool:
    """Whether glob.glob(pattern, recursive=True) would return `path` (the path as find prints
    it from `find_root(pattern)`'s root)."""
    split = _relative(pattern, path)
    if split is None:
        return False
    parts, names = split
    if not parts:
        return False
    if not any(has_magic(part) for part in parts):
        # glob returns a literal pattern as it is written, when it exists.
        return parts == names
    return _match(parts, names, prefix=False)


def could_hold_matches(pattern: str, folder: str) -> bool:
    """Whether files matching `pattern` may lie under `folder` (a folder find could not read)."""
    split = _relative(pattern, folder)
    if split is None:
        return False
    parts, names = split
    # The folder itself must be inside the pattern's path: drop the last component, which names
    # the files, and ask whether the folder's names begin a match of the rest.
    return _match(parts[:-1], names, prefix=True) if parts else False


def find_root(pattern: str) -> tuple[str, int | None]:
    """The folder to list for `pattern` and find's -maxdepth from it (None: no limit).

    The root is the pattern's leading literal folders; the last component is always listed
    from its folder, because rotated files (app.log.1) are looked for beside a tailed file.
    """
    parts = _split(pattern)
    literal: list[str] = []
    for part in parts[:-1]:
        if has_magic(part):
            break
        literal.append(part)
    rest = parts[len(literal):]
    leading = "/" if pattern.startswith("/") else ""
    root = leading + "/".join(literal) or "."
    depth = None if "**" in rest else len(rest)
    return root, depth
