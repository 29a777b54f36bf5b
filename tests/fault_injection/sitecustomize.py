"""Test-only fault injection, put on PYTHONPATH by the tests that need it (never installed).

KIMI_TUI_FAULT=enospc-on-optimizer-save:N makes the N-th ``torch.save(..., ".../optimizer.pt")``
of the process raise OSError(ENOSPC) after writing half a file, exactly what a full disk does in
the middle of a Trainer checkpoint (weights written, optimizer state cut, no trainer_state.json).
torch is patched when it is first imported, so processes that never import it pay nothing.
"""

import errno
import importlib.abc
import os
import sys

SPEC = os.environ.get("KIMI_TUI_FAULT", "")


def _patch_torch(torch):
    count = {"n": 0}
    target = int(SPEC.split(":", 1)[1])
    real_save = torch.save

    def save(obj, f, *args, **kwargs):
        if isinstance(f, (str, os.PathLike)) and str(f).endswith("optimizer.pt"):
            count["n"] += 1
            if count["n"] == target:
                with open(f, "wb") as fh:
                    fh.write(b"\0" * 1024)  # the part that fitted
                raise OSError(errno.ENOSPC, "No space left on device", str(f))
        return real_save(obj, f, *args, **kwargs)

    torch.save = save


class _TorchHook(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name != "torch":
            return None
        sys.meta_path.remove(self)
        try:
            import importlib.util

            spec = importlib.util.find_spec("torch")
        finally:
            sys.meta_path.insert(0, self)
        if spec is None or spec.loader is None:
            return spec
        loader = spec.loader
        real_exec = loader.exec_module

        def exec_module(module):
            real_exec(module)
            _patch_torch(module)
            sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _TorchHook)]

        loader.exec_module = exec_module
        return spec


if SPEC.startswith("enospc-on-optimizer-save:"):
    sys.meta_path.insert(0, _TorchHook())
