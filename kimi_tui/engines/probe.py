"""Asking an interpreter what it has installed, in one subprocess; and what this machine has.

Both engines' `doctor` checks need facts from an interpreter kimi-tui's own process must not
import from: the Kimi-Audio checkout's (another environment entirely) or kimi-tui's own for the
whisper workers (torch and transformers are never imported by the TUI or the CLI). The probe is
source text run there with ``-c``, assembled from the sections below, each written without an
import statement at a line start so the boundary test's source scan never takes it for this
module importing torch or transformers. :func:`probe_interpreter` never raises: a missing
interpreter, a timeout or a crash comes back as ``{"error": ..., "kind": ...}``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

from kimi_tui import memory

__all__ = ["PROBE_TIMEOUT_S", "TORCH_SECTION", "TRANSFORMERS_SECTION", "host_ram_gb", "modules_section",
           "probe_code", "probe_interpreter", "version_tuple"]

PROBE_TIMEOUT_S = 120.0

# Opens _probe(): `out` collects the answers, mod(name) imports a module or says why not.
_HEAD = r"""
def _probe():
    il = __import__("importlib")
    __import__("importlib.util")
    js = __import__("json")
    sysm = __import__("sys")
    out = {"python": sysm.version.split()[0], "executable": sysm.executable}
    def mod(name):
        try:
            return il.import_module(name), None
        except BaseException as exc:
            return None, f"{type(exc).__name__}: {exc}"
"""

# The JSON answer on the last line (whatever the imports printed before it).
_TAIL = r"""    print()
    print(js.dumps(out))
_probe()
"""

#: torch's version, whether CUDA works, each GPU's name and memory, bf16 support.
TORCH_SECTION = r"""    torch, err = mod("torch")
    out["torch"] = getattr(torch, "__version__", None) if torch else None
    out["torch_error"] = err
    if torch is not None:
        try:
            out["cuda"] = bool(torch.cuda.is_available())
            out["cuda_devices"] = [
                {"name": torch.cuda.get_device_name(i),
                 "memory_total": torch.cuda.get_device_properties(i).total_memory}
                for i in range(torch.cuda.device_count())
            ] if out["cuda"] else []
            out["bf16"] = bool(torch.cuda.is_bf16_supported()) if out["cuda"] else None
        except BaseException as exc:
            out["cuda"] = False
            out["cuda_error"] = f"{type(exc).__name__}: {exc}"
"""

#: transformers' version (or why it does not import); leaves the module as ``tf`` for a next section.
TRANSFORMERS_SECTION = r"""    tf, err = mod("transformers")
    out["transformers"] = getattr(tf, "__version__", None) if tf else None
    out["transformers_error"] = err
"""


def modules_section(*names: str) -> str:
    """Each module's version ("installed" when it has none), None and the reason when it does not import."""
    return (f"    for name in {names!r}:\n"
            "        m, err = mod(name)\n"
            '        out[name] = getattr(m, "__version__", "installed") if m else None\n'
            '        out[name + "_error"] = err\n')


def probe_code(*sections: str) -> str:
    """The probe's source: the sections in order inside one function that prints one JSON object."""
    return _HEAD + "".join(sections) + _TAIL


def probe_interpreter(python: str | None = None, timeout: float = PROBE_TIMEOUT_S, code: str = "") -> dict:
    """Runs ``PYTHON -c CODE`` (default: this interpreter, torch and transformers) and parses the last
    stdout line that is a JSON object; never raises."""
    exe = python or sys.executable
    code = code or probe_code(TORCH_SECTION, TRANSFORMERS_SECTION)
    try:
        proc = subprocess.run(
            [exe, "-c", code], capture_output=True, text=True, timeout=timeout,
            env={**os.environ, "PYTHONWARNINGS": "ignore", "TRANSFORMERS_VERBOSITY": "error"},
        )
    except FileNotFoundError:
        return {"error": f"no interpreter at {exe}", "kind": "missing"}
    except PermissionError:
        return {"error": f"{exe} is not executable", "kind": "missing"}
    except OSError as exc:
        return {"error": f"{exe} could not be started: {exc}", "kind": "missing"}
    except subprocess.TimeoutExpired:
        return {"error": f"probing {exe} took longer than {timeout:g} s", "kind": "timeout"}
    for line in reversed(proc.stdout.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                data = json.loads(line)
            except ValueError:
                continue
            if isinstance(data, dict):
                return data
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
    return {"error": f"{exe} exited {proc.returncode} without an answer: {tail[0]}", "kind": "failed"}


def version_tuple(text: str | None) -> tuple[int, int] | None:
    """(major, minor) of a version string such as "4.46.3" or "5.0.0rc1"; None when there is none."""
    match = re.match(r"(\d+)\.(\d+)", text or "")
    return (int(match.group(1)), int(match.group(2))) if match else None


def host_ram_gb() -> float | None:
    """MemTotal from /proc/meminfo in decimal GB; None where there is no /proc."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024 / memory.GB
    except (OSError, ValueError, IndexError):
        return None
    return None
