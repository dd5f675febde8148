"""Lazy re-exports of a package (PEP 562): a CLI starts without importing every module it could use.

In a package's `__init__.py`::

    __getattr__, __dir__, __all__ = lazy_exports(__name__, {"noise": ("measure_images", ...)})
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(package: str, exports: Mapping[str, Iterable[str]]
                 ) -> tuple[Callable[[str], Any], Callable[[], list[str]], list[str]]:
    """`__getattr__`, `__dir__` and `__all__` for `package`, whose `exports` maps module -> names.

    A name is imported from `package.module` (or from `module` itself when it is a dotted, absolute
    name such as "lwa_common.msconcat": a re-export) on first use and then kept in the package
    namespace.
    """
    where = {name: module for module, names in exports.items() for name in names}
    names = sorted(where)

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module if "." in module else f"{package}.{module}"), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted([*vars(sys.modules[package]), *names])

    return __getattr__, __dir__, names
