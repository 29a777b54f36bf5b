"""Run a function right after a module is first imported, without importing it ahead of time.

The test bed's sitecustomize files use it: importing torch or transformers at interpreter start
would cost every process a second or two (and a CUDA context), and most never need them.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys

_HOOKS: dict[str, list] = {}


class _AfterImport(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if fullname not in _HOOKS:
            return None
        for finder in sys.meta_path:  # the finder that would have found it, minus this one
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None and spec.loader is not None and hasattr(spec.loader, "exec_module"):
                loader = spec.loader
                run = loader.exec_module

                def exec_module(module, _run=run, _name=fullname):
                    _run(module)
                    for fn in _HOOKS.pop(_name, []):
                        fn(module)

                loader.exec_module = exec_module
                return spec
            if spec is not None:
                return spec
        return None


_FINDER = _AfterImport()


def after_import(name: str, fn) -> None:
    """``fn(module)`` once ``name`` has been executed (at once if it already has)."""
    if name in sys.modules:
        fn(sys.modules[name])
        return
    _HOOKS.setdefault(name, []).append(fn)
    if _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)
