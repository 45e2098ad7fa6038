"""PEP 562 lazy attributes for a package's ``__init__``: one table, two functions.

A package lists its public names and where each lives; the names load on first use, so
importing the package costs nothing until one is used::

    _LAZY = {"capture": "wattwise.environment._capture",            # same name there
             "resolve_interpreter": ("wattwise.environment._interpreter", "resolve")}
    __getattr__, __dir__ = lazy_attributes(__name__, _LAZY, globals())

A module may be relative to the package (``"._tuner"``). A loaded value is kept in the
package's namespace, so each name is looked up once. This is a ground-layer module: it
imports nothing from wattwise, and ``importlib`` only when a name is first used.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, MutableMapping
from typing import Any

#: Public name → module (same name there) or (module, name there).
LazyTable = Mapping[str, str | tuple[str, str]]


def lazy_attributes(
    package: str, table: LazyTable, namespace: MutableMapping[str, Any]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package`` from its table of lazy names.

    Args:
        package: The package's ``__name__`` (for relative modules and error messages).
        table: Public name → module, or → ``(module, attribute)`` when the name differs.
        namespace: The package's ``globals()``: loaded values are kept there.

    Returns:
        ``(__getattr__, __dir__)``: an unknown name raises :class:`AttributeError` as a
        module would; ``dir()`` lists the loaded names and the lazy ones, sorted.
    """
    where = {name: (spec, name) if isinstance(spec, str) else spec for name, spec in table.items()}

    def __getattr__(name: str) -> Any:  # noqa: N807 - the PEP 562 hook's own name
        try:
            module, attribute = where[name]
        except KeyError:
            msg = f"module {package!r} has no attribute {name!r}"
            raise AttributeError(msg) from None
        import importlib

        value = getattr(importlib.import_module(module, package), attribute)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:  # noqa: N807 - the PEP 562 hook's own name
        return sorted({*namespace, *where})

    return __getattr__, __dir__
