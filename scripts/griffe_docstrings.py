"""A Griffe extension for the documentation site: wattwise's docstrings as mkdocstrings reads them.

The docstrings are written for readers of the source (Google style with a few reST habits);
mkdocs.yml loads this extension so that the API reference renders them without changing
them in the source:

* Sphinx roles (``:func:`track```, ``:class:`~wattwise.store.RunRecord```) become code that
  links to the object's page where the site renders it, and stays plain code where it does
  not (an *optional* autoref: never a broken link, never a build warning);
* one ``Args:`` entry for several parameters (``sacct, scontrol: The programs to run.``)
  becomes one entry per parameter, each with the description;
* a paragraph ending in ``::`` (reST's "a literal block follows") ends in ``:``;
* a constant documented by ``#:`` comments just above it (Sphinx's habit) gets them as its
  docstring, so it is rendered and can be linked to.

Nothing here imports wattwise: Griffe reads the source statically.
"""

from __future__ import annotations

import html
import re
from typing import Any

import griffe

#: ``:func:`name```, ``:py:class:`~a.b.C```: the role, then the target.
ROLE = re.compile(r":(?:py:)?(?:func|class|meth|attr|data|mod|exc|obj|const):`([^`]+)`")
#: The sections whose entries name parameters or attributes.
ENTRY_SECTIONS = re.compile(
    r"^(\s*)(Args|Arguments|Parameters|Keyword Args|Keyword Arguments|Other Parameters"
    r"|Attributes):\s*$"
)
#: An entry naming several parameters: ``a, b, c: description``.
GROUPED = re.compile(r"^(\s+)(\w+(?:\s*,\s*\w+)+)(\s*(?:\([^)]*\))?\s*:\s?)(.*)$")


def _target(obj: griffe.Object | griffe.Alias, text: str) -> tuple[str, str]:
    """The identifier a role's text names, seen from ``obj``, and the title to show."""
    text = text.strip()
    short = text.startswith("~")
    path = text.lstrip("~.").removesuffix("()")
    title = path.rsplit(".", 1)[-1] if short else path
    if path.startswith("wattwise.") or path == "wattwise":
        return path, title
    head, _, rest = path.partition(".")
    try:
        resolved = obj.resolve(head)
    except (griffe.NameResolutionError, griffe.AliasResolutionError, KeyError):
        return path, title
    return (f"{resolved}.{rest}" if rest else resolved), title


def _link(obj: griffe.Object | griffe.Alias, match: re.Match[str]) -> str:
    identifier, title = _target(obj, match[1])
    return (
        f'<autoref identifier="{html.escape(identifier)}" optional>'
        f"<code>{html.escape(title)}</code></autoref>"
    )


def _split_grouped(lines: list[str]) -> list[str]:
    """One entry per parameter where an entry names several (with the description copied)."""
    out: list[str] = []
    section_indent: int | None = None
    i = 0
    while i < len(lines):
        line = lines[i]
        header = ENTRY_SECTIONS.match(line)
        if header:
            section_indent = len(header[1])
            out.append(line)
            i += 1
            continue
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        if section_indent is not None and stripped and indent <= section_indent:
            section_indent = None
        grouped = GROUPED.match(line) if section_indent is not None else None
        if grouped is None:
            out.append(line)
            i += 1
            continue
        entry_indent = len(grouped[1])
        body = [line]
        i += 1
        while i < len(lines) and (
            not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > entry_indent
        ):
            if not lines[i].strip() and (
                i + 1 >= len(lines)
                or len(lines[i + 1]) - len(lines[i + 1].lstrip()) <= entry_indent
            ):
                break
            body.append(lines[i])
            i += 1
        for name in re.split(r"\s*,\s*", grouped[2]):
            out.append(f"{grouped[1]}{name}{grouped[3]}{grouped[4]}")
            out.extend(body[1:])
    return out


def _literal_markers(lines: list[str]) -> list[str]:
    """``Quick start::`` → ``Quick start:`` (the indented block after it is code anyway)."""
    return [line.rstrip()[:-1] if line.rstrip().endswith("::") else line for line in lines]


def rewrite(obj: griffe.Object | griffe.Alias, text: str) -> str:
    """The docstring ``text`` of ``obj`` as the site renders it."""
    lines = _literal_markers(_split_grouped(text.split("\n")))
    return ROLE.sub(lambda match: _link(obj, match), "\n".join(lines))


def _comment_docstring(attr: griffe.Object) -> griffe.Docstring | None:
    """The ``#:`` comment lines right above an attribute, as its docstring (None if none)."""
    if attr.lineno is None:
        return None
    try:
        source = attr.lines_collection[attr.filepath]  # type: ignore[index]
    except (KeyError, TypeError, griffe.BuiltinModuleError):
        return None
    comments: list[str] = []
    line = attr.lineno - 2
    while line >= 0 and source[line].lstrip().startswith("#:"):
        comments.insert(0, source[line].lstrip()[2:].strip())
        line -= 1
    if not comments:
        return None
    return griffe.Docstring("\n".join(comments), lineno=line + 2, parent=attr)


class WattwiseDocstrings(griffe.Extension):
    """Rewrites every docstring of a loaded package once the package is complete."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        seen: set[str] = set()
        stack: list[griffe.Object] = [pkg]
        while stack:
            obj = stack.pop()
            if obj.path in seen:
                continue
            seen.add(obj.path)
            if obj.docstring is None and obj.kind is griffe.Kind.ATTRIBUTE:
                obj.docstring = _comment_docstring(obj)
            if obj.docstring is not None:
                obj.docstring.value = rewrite(obj, obj.docstring.value)
            stack.extend(m for m in obj.members.values() if not m.is_alias)  # type: ignore[misc]
