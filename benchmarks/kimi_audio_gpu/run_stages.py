#!/usr/bin/env python3
"""kimi-tui's kimi-audio stages on a random-initialised Kimi-Audio-7B of the real size, with what each one costs.

Usage (repo root; on the GPU machine under the device's python3, on a CPU with --cpu --size tiny):
    python3 benchmarks/kimi_audio_gpu/run_stages.py [options] STEP [STEP ...]
    STEP: build extract convert train export evaluate (or all), run in that order.

Each call may be a separate device call: state lives in .testbed/ at the repo root (ignored, kept while
the machine stays warm) and the base model folders in a tmpfs at full size; results are
appended to .testbed/results.json and copied with a summary and logs to $OUT. A step whose inputs are
missing (a cold machine) gets the steps it needs put before it, when the call's time allows.

What a step does: `build` builds the checkpoint (build_checkpoint.py, the official classes) and a
kimi-tui kimi-audio project on the bundled sample (9 train + 10 test Mandarin clips; `prepare` run);
the others run `kimi-tui run STAGE --project P --wait`. For each: wall time, peak GPU memory (NVML,
the stage's processes; and torch's allocator peak), peak host RSS of the stage's processes, disk and
tmpfs used and the least free seen, the run's state and its last log lines. train runs with the
CUDA allocator capped at --cap-gib (80 GiB: "LoRA fits one 80 GB GPU") and is held against kimi-tui's
preflight memory estimate (kimi_tui/memory.py).

Two phases: this file first runs under the device's python3 with the standard library only (machine
facts, the environment: wheels, a kimi-tui interpreter, the official code's interpreter wrapper), then
re-executes itself under the kimi-tui interpreter for the stages.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import threading
import time
from pathlib import Path

BED = Path(__file__).resolve().parent
REPO = BED.parents[1]
STEPS = ("build", "extract", "convert", "train", "export", "evaluate")
#: Rough seconds each step needs (full size on one H200 / tiny on a 2-core CPU), to decide whether a step
#: still fits the call; see README.md for where the full-size figures come from.
ESTIMATE_S = {
    "full": {"build": 150, "extract": 100, "convert": 240, "train": 200, "export": 330, "evaluate": 300},
    "tiny": {"build": 40, "extract": 40, "convert": 40, "train": 60, "export": 40, "evaluate": 90},
}
GB = 1e9
GIB = 2**30
#: Seconds kept back at the end of a call: stopping a run past its time (kimi-tui stop: up to 30 s) + summary.
RESERVE_S = 45
#: The RAM-backed folder at full size: a tmpfs of its own (its size cap is ours, not 50 % of whatever
#: MemTotal the VM reported at boot), else /dev/shm.
TMPFS_MOUNT = Path("/mnt/kimi-testbed")
SHM_FALLBACK = Path("/dev/shm/kimi-testbed")
#: RAM kept for the stage processes when deciding what may go to the tmpfs: the export holds the merged
#: model and the LM it builds (~2 x 21 GB in bf16) plus Whisper; convert about as much.
PROCESS_RESERVE_GB = 55
#: Log lines not echoed (transformers warns once per Whisper tensor when the official KimiAudioModel
#: loads Whisper inside its constructor under from_pretrained's meta-device init; harmless, hundreds of lines).
NOISE = re.compile(r"copying from a non-meta parameter|module\._load_from_state_dict\(\*args\)")


def say(msg: str = "") -> None:
    print(msg, flush=True)


def sh(cmd: list[str] | str, timeout: float = 60, **kw) -> str:
    try:
        out = subprocess.run(cmd, shell=isinstance(cmd, str), capture_output=True, text=True, timeout=timeout, **kw)
        return (out.stdout + out.stderr).strip()
    except (OSError, subprocess.SubprocessError) as exc:
        return f"({type(exc).__name__}: {exc})"


def meminfo() -> dict[str, int]:
    out = {}
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            key, _, rest = line.partition(":")
            out[key] = int(rest.split()[0]) * 1024
    except OSError:
        pass
    return out


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("steps", nargs="+", choices=STEPS + ("all",))
    p.add_argument("--cpu", action="store_true", help="CPU dry run: the official venv + cpu_shims, kimi-tui's .venv")
    p.add_argument("--size", choices=("full", "tiny"), help="default: full, or tiny with --cpu")
    p.add_argument("--state", default=str(REPO / ".testbed"), help="where the test bed keeps its state (.testbed/)")
    p.add_argument("--site", help="wheels already installed there (pip --target); default: install .whl/ into STATE/site")
    p.add_argument("--checkout", default=str(REPO / ".testbed_checkout"), help="the official checkout (carried copy)")
    p.add_argument("--official-python", help="interpreter for the official code (default: this python3; --cpu: /work/upstream/venv/bin/python)")
    p.add_argument("--kimi-python", help="interpreter with kimi-tui importable (default: made in STATE/ktvenv; --cpu: REPO/.venv/bin/python)")
    p.add_argument("--budget-s", type=float, default=555, help="seconds this call may take in all (the device gives 600)")
    p.add_argument("--base-on-shm", choices=("auto", "yes", "no"), default="auto",
                   help="base model folder in the tmpfs (auto: yes at full size)")
    p.add_argument("--merged-on-shm", choices=("auto", "yes", "no"), default="auto",
                   help="the export's LoRA-merged model in the tmpfs (auto: at full size, when RAM allows)")
    p.add_argument("--on-tmpfs", default="", metavar="converted,export",
                   help="also put the converted model and/or the export in the tmpfs (if the disk is short)")
    p.add_argument("--tmpfs", help="the RAM-backed folder (default: a tmpfs mounted at /mnt/kimi-testbed at full "
                                  "size, else /dev/shm/kimi-testbed)")
    p.add_argument("--tmpfs-size-gb", type=int, default=100)
    p.add_argument("--ram-gb", type=float, help="host RAM to plan with (default: MemTotal, at least 128 GiB on the "
                                                 "GPU machine: its MemTotal can read low until memory is used)")
    p.add_argument("--cap-gib", type=float, default=80.0, help="CUDA allocator cap of the train stage (0: none)")
    p.add_argument("--skip-init", choices=("auto", "yes", "no"), default="auto",
                   help="skip the discarded random init in convert/export (auto: yes at full size); see testbed_env/testbed_controls.py")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--learning-rate", default="1e-4")
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--max-new-tokens", type=int, default=16)
    p.add_argument("--eval-splits", default="test,train")
    p.add_argument("--eval-base", choices=("yes", "no"), default="yes")
    p.add_argument("--set", action="append", default=[], metavar="TABLE.KEY=VALUE", help="any other kimi-tui.toml field")
    p.add_argument("--no-auto", action="store_true", help="never add missing prerequisite steps")
    p.add_argument("--fresh", action="store_true", help="delete the project, models and results first")
    args = p.parse_args(argv)
    args.size = args.size or ("tiny" if args.cpu else "full")
    steps = list(STEPS) if "all" in args.steps else args.steps
    args.steps = [s for s in STEPS if s in steps]
    return args


# =====================================================================================================
# phase 1: standard library only, under the device's python3
# =====================================================================================================


def machine_facts() -> dict:
    facts = {
        "time": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "host": os.uname().nodename, "python": sys.version.split()[0],
        "cpus": os.cpu_count(), "df": sh(["df", "-h", "/", "/tmp", "/dev/shm", str(REPO)]),
        "free_g": sh(["free", "-g"]),
        "nvidia_smi": sh(["nvidia-smi", "--query-gpu=name,memory.total,memory.used,driver_version",
                          "--format=csv,noheader"]) if shutil.which("nvidia-smi") else "no nvidia-smi",
    }
    return facts


def install_wheels(site: Path) -> None:
    wheels = sorted((REPO / ".whl").glob("*.whl"))
    if not wheels:
        raise SystemExit(f"no wheels in {REPO / '.whl'}: run benchmarks/kimi_audio_gpu/make_carry.sh here and carry .whl")
    marker = site / ".testbed-wheels"
    names = "\n".join(w.name for w in wheels)
    if marker.exists() and marker.read_text() == names:
        say(f"wheels: already installed in {site}")
        return
    shutil.rmtree(site, ignore_errors=True)
    t0 = time.time()
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                    "--no-cache-dir", "--upgrade", "--target", str(site), *map(str, wheels)], check=True,
                   env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    marker.write_text(names)
    say(f"wheels: {len(wheels)} installed in {site} in {time.time() - t0:.0f} s")


def make_kimi_python(state: Path, site: Path) -> str:
    """An interpreter where kimi_tui (this repo), its carried dependencies and the device's packages import
    without PYTHONPATH: the engine gives stage processes PYTHONPATH=<checkout>, and the evaluate stage
    runs `sys.executable -m kimi_tui.workers.evaluate` under it. kimi-tui cannot be pip-installed there
    (its build backend, hatchling, is not on the device): a .pth puts the repo on the path instead, as an
    editable install would."""
    venv = state / "ktvenv"
    py = venv / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    purelib, platlib = sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]
    lines = [str(REPO), str(site), f"import site; site.addsitedir({purelib!r})"]
    if platlib != purelib:
        lines.append(f"import site; site.addsitedir({platlib!r})")
    check = "import kimi_tui.config, kimi_tui.gpu, kimi_tui.evaluate.normalise, numpy, pynvml, rapidfuzz, opencc, tomlkit"
    if not py.exists():
        out = subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], capture_output=True,
                             text=True, env=env)
        if out.returncode != 0:
            say(f"venv failed ({out.stderr.strip()[-300:]}); falling back to a .pth in {purelib}")
    if py.exists():
        vsite = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                    capture_output=True, text=True, env=env).stdout.strip())
        vsite.mkdir(parents=True, exist_ok=True)
        (vsite / "kimi_testbed.pth").write_text("\n".join(lines) + "\n")
        ok = subprocess.run([str(py), "-c", check], capture_output=True, text=True, env=env)
        if ok.returncode == 0:
            return str(py)
        say(f"kimi-tui venv does not import: {ok.stderr.strip()[-500:]}; falling back to a .pth in {purelib}")
    # fallback: the device's own interpreter, with the same .pth in its site-packages (root, a machine given back after)
    Path(purelib, "kimi_testbed.pth").write_text("\n".join(lines[:2]) + "\n")
    ok = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, env=env)
    if ok.returncode != 0:
        raise SystemExit(f"kimi-tui does not import on this machine: {ok.stderr.strip()[-800:]}")
    return sys.executable


def write_wrapper(state: Path, python: str, paths: list[Path]) -> Path:
    """[kimi_audio] python: the official code's interpreter with the carried wheels and the stand-ins in front
    (whatever PYTHONPATH the engine gives, the checkout, stays behind them)."""
    wrapper = state / "bin" / "kimi-python"
    wrapper.parent.mkdir(parents=True, exist_ok=True)
    front = ":".join(str(p) for p in paths)
    wrapper.write_text(
        "#!/bin/sh\n"
        "# kimi-tui GPU test bed: the official Kimi-Audio code's interpreter (written by run_stages.py)\n"
        f'export PYTHONPATH="{front}${{PYTHONPATH:+:$PYTHONPATH}}"\n'
        f'exec "{python}" "$@"\n'
    )
    wrapper.chmod(0o755)
    return wrapper


def phase1(args: argparse.Namespace, argv: list[str]) -> None:
    t0 = time.time()
    state = Path(args.state)
    state.mkdir(parents=True, exist_ok=True)
    say(f"=== kimi-audio GPU test bed: {' '.join(args.steps)} (size {args.size}{', CPU dry run' if args.cpu else ''})")
    facts = machine_facts()
    for key in ("time", "host", "python", "cpus", "nvidia_smi"):
        say(f"{key}: {facts[key]}")
    say(facts["df"])
    say(facts["free_g"])
    (state / "machine.json").write_text(json.dumps(facts, indent=2) + "\n")
    if args.fresh:
        for name in ("project", "models", "results.json", "torch_peaks"):
            path = state / name
            shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
        for root in (TMPFS_MOUNT, SHM_FALLBACK, Path(args.tmpfs) if args.tmpfs else None):
            if root is not None and root.is_dir():
                for child in root.iterdir():
                    shutil.rmtree(child, ignore_errors=True) if child.is_dir() else child.unlink()
    if args.cpu:
        official = args.official_python or "/work/upstream/venv/bin/python"
        kimi = args.kimi_python or str(REPO / ".venv" / "bin" / "python")
        front = [BED / "cpu_shims", BED / "stand_ins", BED / "testbed_env"]
    else:
        site = Path(args.site) if args.site else state / "site"
        if not args.site:
            install_wheels(site)
        official = args.official_python or sys.executable
        kimi = args.kimi_python or make_kimi_python(state, site)
        front = [site, BED / "stand_ins", BED / "testbed_env"]
    wrapper = write_wrapper(state, official, front)
    probe = ("import sys, torch, transformers, tokenizers, huggingface_hub, peft, accelerate, librosa, loguru, "
             "flash_attn, tiktoken, deepspeed; print('official interpreter: python', sys.version.split()[0], "
             "'torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'transformers', transformers.__version__, "
             "'tokenizers', tokenizers.__version__, 'hub', huggingface_hub.__version__, 'peft', peft.__version__, "
             "'accelerate', accelerate.__version__, 'deepspeed', deepspeed.__version__, 'flash_attn (stand-in)', "
             "flash_attn.__version__)")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([str(wrapper), "-c", probe], capture_output=True, text=True, timeout=300, env=env)
    lines = [ln for ln in (out.stdout + out.stderr).splitlines() if not ln.startswith("[20")]
    say("\n".join(lines[-3:]))
    if out.returncode != 0:
        raise SystemExit("the official code's interpreter cannot import what it needs (see above)")
    say(f"kimi-tui interpreter: {kimi}; official wrapper: {wrapper}; setup {time.time() - t0:.0f} s")
    env.update(KIMI_TESTBED_PHASE2="1", KIMI_TESTBED_T0=repr(t0), KIMI_TESTBED_WRAPPER=str(wrapper),
               KIMI_TESTBED_KIMI_PY=kimi, PYTHONUNBUFFERED="1")
    os.execve(kimi, [kimi, str(Path(__file__).resolve()), *argv], env)


# =====================================================================================================
# phase 2: under the kimi-tui interpreter
# =====================================================================================================


class Tee:
    """Everything printed also goes to the call's log file (copied to $OUT)."""

    def __init__(self, path: Path) -> None:
        self.file = open(path, "a", encoding="utf-8", errors="replace")
        self.stdout = sys.stdout

    def write(self, text: str) -> int:
        self.file.write(text)
        self.file.flush()
        return self.stdout.write(text)

    def flush(self) -> None:
        self.stdout.flush()


class ProcSampler:
    """Host RSS of every process tagged KIMI_TESTBED_TAG=<tag> (the stage's processes inherit it), and the
    least free disk, tmpfs and MemAvailable seen, every 0.5 s."""

    def __init__(self, tag: str, paths: dict[str, Path], interval: float = 0.5) -> None:
        self.needle = f"KIMI_TESTBED_TAG={tag}".encode() + b"\0"
        self.paths = paths
        self.interval = interval
        self.peak_rss = 0
        self.peak_process_rss = 0
        self.peak_process = ""
        self.min_free = {k: None for k in paths}
        self.min_mem_available = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._done.is_set():
            self.sample()
            self._done.wait(self.interval)

    def sample(self) -> None:
        total = 0
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                with open(f"/proc/{entry.name}/environ", "rb") as fh:
                    if self.needle not in fh.read() + b"\0":
                        continue
                with open(f"/proc/{entry.name}/status") as fh:
                    rss = next((int(ln.split()[1]) * 1024 for ln in fh if ln.startswith("VmRSS:")), 0)
                with open(f"/proc/{entry.name}/cmdline", "rb") as fh:
                    cmd = fh.read().replace(b"\0", b" ").decode(errors="replace")[:160]
            except OSError:
                continue
            total += rss
            if rss > self.peak_process_rss:
                self.peak_process_rss, self.peak_process = rss, cmd
        self.peak_rss = max(self.peak_rss, total)
        for key, path in self.paths.items():
            try:
                free = shutil.disk_usage(path).free
            except OSError:
                continue
            self.min_free[key] = free if self.min_free[key] is None else min(self.min_free[key], free)
        avail = meminfo().get("MemAvailable")
        if avail is not None:
            self.min_mem_available = avail if self.min_mem_available is None else min(self.min_mem_available, avail)

    def __enter__(self) -> "ProcSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()


def du(path: Path) -> int:
    """Bytes under path (symlinks not followed), 0 if missing."""
    if not path.exists():
        return 0
    if path.is_file():
        return path.stat().st_size
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


class Bed:
    def __init__(self, args: argparse.Namespace) -> None:
        sys.path.insert(0, str(REPO / "benchmarks"))
        self.args = args
        self.size = args.size
        self.full = args.size == "full"
        self.t0 = float(os.environ.get("KIMI_TESTBED_T0", time.time()))
        self.deadline = self.t0 + args.budget_s
        self.state = Path(args.state)
        self.wrapper = os.environ["KIMI_TESTBED_WRAPPER"]
        self.kimi_py = os.environ["KIMI_TESTBED_KIMI_PY"]
        self.checkout = Path(args.checkout).resolve()
        self.models = self.state / "models"
        self.tmpfs, how = self.tmpfs_root()
        say(f"tmpfs: {self.tmpfs} ({how})")
        total = meminfo().get("MemTotal", 0)
        device = self.full and not args.cpu
        self.ram = args.ram_gb * GB if args.ram_gb else max(total, 0.97 * 128 * GIB if device else 0)
        self.on_tmpfs = {x.strip() for x in args.on_tmpfs.split(",") if x.strip()}
        self.base_on_shm = args.base_on_shm == "yes" or (args.base_on_shm == "auto" and self.full)
        self.base = (self.tmpfs if self.base_on_shm else self.models) / "Kimi-Audio-7B"
        self.glm4 = self.models / "glm-4-voice-tokenizer"
        self.project = self.state / "project"
        self.results_path = self.state / "results.json"
        self.link_outputs()
        self.logs = self.state / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.call_id = time.strftime("%Y%m%d-%H%M%S", time.localtime(self.t0))
        self.call_log = self.logs / f"call-{self.call_id}.log"
        sys.stdout = Tee(self.call_log)  # type: ignore[assignment]
        self.skip_init = args.skip_init == "yes" or (args.skip_init == "auto" and self.full)
        self.records: list[dict] = []
        self.stage_logs: list[Path] = []
        self.notes: list[str] = []

    # -- where the big folders go -------------------------------------------------------------------

    def tmpfs_root(self) -> tuple[Path, str]:
        if self.args.tmpfs:
            Path(self.args.tmpfs).mkdir(parents=True, exist_ok=True)
            return Path(self.args.tmpfs), "--tmpfs"
        if not self.full:
            SHM_FALLBACK.mkdir(parents=True, exist_ok=True)
            return SHM_FALLBACK, "/dev/shm at tiny size"
        mounts = Path("/proc/mounts").read_text() if Path("/proc/mounts").exists() else ""
        if any(line.split()[1] == str(TMPFS_MOUNT) for line in mounts.splitlines() if len(line.split()) > 1):
            return TMPFS_MOUNT, "a tmpfs of the test bed's, mounted by an earlier call"
        TMPFS_MOUNT.mkdir(parents=True, exist_ok=True)
        out = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={self.args.tmpfs_size_gb}g", "tmpfs",
                              str(TMPFS_MOUNT)], capture_output=True, text=True)
        if out.returncode == 0:
            return TMPFS_MOUNT, f"a tmpfs mounted now, capped at {self.args.tmpfs_size_gb} GB"
        SHM_FALLBACK.mkdir(parents=True, exist_ok=True)
        return SHM_FALLBACK, f"mounting a tmpfs failed ({(out.stderr or out.stdout).strip()[:200]}): /dev/shm"

    def link_outputs(self) -> None:
        """--on-tmpfs: project folders that are links into the tmpfs (the official code writes through them)."""
        for name, rel in (("converted", Path("models") / "base"), ("export", Path("exports") / "final")):
            path = self.project / rel
            if name not in self.on_tmpfs or not self.project.exists() or path.is_symlink():
                continue
            target = self.tmpfs / name
            target.mkdir(parents=True, exist_ok=True)
            if path.exists():
                shutil.rmtree(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.symlink_to(target, target_is_directory=True)
            say(f"{rel} -> {target} (tmpfs)")

    def on_tmpfs_path(self, path: Path) -> bool:
        try:
            real = Path(os.path.realpath(path))
            return real == self.tmpfs or self.tmpfs in real.parents
        except OSError:
            return False

    def tmpfs_room(self) -> float:
        """Bytes the tmpfs may still take: its own free space, and the RAM left after what it holds and the
        stage processes' reserve."""
        free = shutil.disk_usage(self.tmpfs).free
        return max(0.0, min(free, self.ram - du(self.tmpfs) - PROCESS_RESERVE_GB * GB * (1 if self.full else 0.0)))

    @staticmethod
    def clear(path: Path) -> None:
        """Remove a folder's contents; a link into the tmpfs stays a link (its target is emptied)."""
        if path.is_symlink():
            target = Path(os.path.realpath(path))
            for child in target.iterdir() if target.is_dir() else []:
                shutil.rmtree(child, ignore_errors=True) if child.is_dir() else child.unlink()
        elif path.exists():
            shutil.rmtree(path, ignore_errors=True)

    # -- time ---------------------------------------------------------------------------------------

    def left(self) -> float:
        return self.deadline - time.time()

    # -- records ------------------------------------------------------------------------------------

    def load_results(self) -> list[dict]:
        try:
            return json.loads(self.results_path.read_text())
        except (OSError, ValueError):
            return []

    def save(self, record: dict) -> None:
        record.setdefault("call", self.call_id)
        record.setdefault("size", self.size)
        self.records.append(record)
        results = self.load_results() + [record]
        self.results_path.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
        self.export_out()

    def export_out(self) -> None:
        out = os.environ.get("OUT")
        if not out:
            return
        out = Path(out)
        try:
            shutil.copyfile(self.results_path, out / "results.json")
            shutil.copyfile(self.call_log, out / "call.log")
            (out / "summary.txt").write_text(self.summary_text())
            keep = self.stage_logs[-5:]  # at most 8 files come back: these 5 + results, summary, call log
            for stale in out.glob("stage-*.log"):
                if stale.name not in {p.name for p in keep}:
                    stale.unlink()
            for path in keep:
                shutil.copyfile(path, out / path.name)
        except OSError as exc:
            say(f"(could not copy to $OUT: {exc})")

    # -- the project --------------------------------------------------------------------------------

    def kimi(self, *argv: str, timeout: float = 120, env: dict | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([self.kimi_py, "-m", "kimi_tui", *argv], capture_output=True, text=True,
                              timeout=timeout, env=env)

    def config_fields(self) -> set[str]:
        from kimi_tui.config import KimiAudioSection

        return set(KimiAudioSection.model_fields)

    def make_project(self) -> dict:
        from kimi_tui.config import save_config, set_field
        from kimi_tui.project import Project

        if not (self.project / "kimi-tui.toml").exists():
            out = self.kimi("init", str(self.project), "--sample", "--exist-ok")
            if out.returncode != 0:
                raise RuntimeError(f"kimi-tui init failed: {out.stdout}{out.stderr}")
        project = Project.load(self.project)
        fields = self.config_fields()
        values: dict = {
            "engine.name": "kimi-audio",
            "engine.device": "cpu" if self.args.cpu else "cuda",
            "kimi_audio.checkout": str(self.checkout),
            "kimi_audio.python": self.wrapper,
            "kimi_audio.base_model": str(self.base),
            "kimi_audio.glm4_tokenizer": str(self.glm4),
            "kimi_audio.whisper": "",
            "kimi_audio.method": "lora",
            "kimi_audio.lora_rank": 8,
            "kimi_audio.lora_alpha": 16,
            "train.bf16": True,
            "train.epochs": self.args.epochs,
            "train.learning_rate": self.args.learning_rate,
            "train.batch_size": self.args.batch_size,
            "train.gradient_accumulation_steps": 1,
            "train.warmup_ratio": 0.1,
            "train.save_steps": "auto",
            "train.eval_ratio": 0.0,
            "train.num_gpus": 1,
            "eval.splits": [s.strip() for s in self.args.eval_splits.split(",") if s.strip()],
            "eval.include_base": self.args.eval_base == "yes",
            "eval.checkpoints": "last",
            "eval.include_export": True,
            "eval.max_new_tokens": self.args.max_new_tokens,
        }
        missing = []
        for key in ("convert_bf16", "export_bf16"):
            if key in fields:
                values[f"kimi_audio.{key}"] = True
            else:
                missing.append(key)
        for item in self.args.set:
            key, _, value = item.partition("=")
            values[key.strip()] = value.strip()
        config = project.config
        for key, value in values.items():
            config = set_field(config, key, value)
        save_config(project.config_path, config)
        self.link_outputs()
        if missing:
            note = (f"kimi-tui has no [kimi_audio] {', '.join(missing)} yet: run without "
                    f"({'fp32 convert/export: ~41.6 + 45 GB at full size' if 'convert_bf16' in missing else ''})")
            self.notes.append(note)
            say("note: " + note)
        return {k: v for k, v in values.items()}

    def ensure_prepared(self) -> dict | None:
        if (self.project / "data" / "train.jsonl").exists():
            return None
        return self.run_kimi_stage("prepare", timeout=min(120, max(30, self.left() - 30)))

    # -- facts about what exists ----------------------------------------------------------------------

    def done(self, step: str) -> bool:
        p = self.project
        if step == "build":
            return ((self.models / "build_report.json").exists() and (self.base / "config.json").exists()
                    and any(self.base.glob("*.safetensors")) and (self.glm4 / "config.json").exists()
                    and (p / "kimi-tui.toml").exists())
        if step == "extract":
            return (p / "features" / "train.jsonl").exists()
        if step == "convert":
            return (p / "models" / "base" / "config.json").exists() and any((p / "models" / "base").glob("*.safetensors"))
        if step == "train":
            return (p / "training" / "final" / "adapter_config.json").exists() or (p / "training" / "final" / "config.json").exists()
        if step == "export":
            return (p / "exports" / "final" / "config.json").exists()
        return False

    def plan_steps(self) -> list[str]:
        wanted = list(self.args.steps)
        if self.args.no_auto:
            return wanted
        first = STEPS.index(wanted[0])
        extra = [s for s in STEPS[:first] if not self.done(s)]
        if extra:  # the earliest missing one and everything after it
            extra = list(STEPS[STEPS.index(extra[0]):first])
            note = (f"{', '.join(extra)} added before {wanted[0]}: its inputs are missing "
                    "(a fresh or cold machine: the state of earlier calls is gone)")
            self.notes.append(note)
            say("note: " + note)
        return extra + wanted

    # -- sizes for the disk plan -----------------------------------------------------------------------

    def build_report(self) -> dict:
        try:
            return json.loads((self.models / "build_report.json").read_text())
        except (OSError, ValueError):
            return {}

    def bytes_per_param(self, which: str) -> int:
        from kimi_tui.project import Project

        fields = self.config_fields()
        cfg = Project.load(self.project).config.kimi_audio if (self.project / "kimi-tui.toml").exists() else None
        if which == "convert":
            return 2 if cfg is not None and getattr(cfg, "convert_bf16", False) else 4
        # export: the lead's export_bf16 writes bf16 directly once convert_bf16 exists; before, fp32 first
        return 2 if cfg is not None and "convert_bf16" in fields and getattr(cfg, "export_bf16", False) else 4

    def params(self) -> dict:
        report = self.build_report()
        if report:
            return {"kimi_audio": report["lm_params"] + report["whisper_encoder_params"],
                    "lm": report["lm_params"], "whisper": report["whisper_params"]}
        return {"kimi_audio": 10_403_303_424, "lm": 9_766_334_464, "whisper": 1_543_490_560}

    def needs(self, step: str) -> list[tuple[str, Path, float]]:
        """(what, where, bytes) that must be free before the step starts."""
        n = self.params()
        margin = 1.5 * GB if self.full else 0.05 * GB
        if step == "build":
            base = (n["lm"] + n["whisper"]) * 2 if self.build_report() else (22.7 if self.full else 0.1) * GB
            return [("base model + whisper-large-v3", self.base.parent, base + margin),
                    ("GLM-4 tokenizer", self.models, 1.5 * GB + margin if self.full else margin)]
        if step == "convert":
            where = self.tmpfs if "converted" in self.on_tmpfs else self.project
            return [("converted model", where, n["kimi_audio"] * self.bytes_per_param("convert") + margin)]
        if step == "train":
            return [("checkpoints (LoRA)", self.project, 1 * GB if self.full else margin)]
        if step == "export":
            merged = n["kimi_audio"] * self.bytes_per_param("convert")
            export = (n["lm"] + n["whisper"]) * self.bytes_per_param("export")
            shm = self.merged_on_shm(merged)
            if "export" in self.on_tmpfs:
                out = [("export (tmpfs)", self.tmpfs, export + margin + (merged if shm else 0))]
                if not shm:
                    out.append(("LoRA-merged model", self.project, merged + margin))
                return out
            out = [("export", self.project, export + margin + (0 if shm else merged))]
            if shm:
                out.append(("LoRA-merged model (tmpfs)", self.tmpfs, merged + margin))
            return out
        return [("evaluations", self.project, 0.2 * GB if self.full else margin)]

    def merged_on_shm(self, merged_bytes: float) -> bool:
        if self.args.merged_on_shm != "auto":
            return self.args.merged_on_shm == "yes"
        if not self.full:
            return False
        export = (self.params()["lm"] + self.params()["whisper"]) * self.bytes_per_param("export")
        extra = export if "export" in self.on_tmpfs else 0
        return merged_bytes + extra <= self.tmpfs_room()

    def check_space(self, step: str) -> str | None:
        problems = []
        for what, where, need in self.needs(step):
            where.mkdir(parents=True, exist_ok=True)
            free = self.tmpfs_room() if self.on_tmpfs_path(where) else shutil.disk_usage(where).free
            say(f"  space for {what}: {need / GB:.2f} GB needed at {where}, {free / GB:.2f} GB free")
            if free < need:
                problems.append(f"{what} needs {need / GB:.1f} GB at {where}, only {free / GB:.1f} GB free")
        return "; ".join(problems) or None

    # -- running ---------------------------------------------------------------------------------------

    def usage(self) -> dict:
        out = {"project_gb": round(du(self.project) / GB, 3), "models_gb": round(du(self.models) / GB, 3),
               "shm_gb": round(du(self.tmpfs) / GB, 3)}
        for key, path in (("disk_free_gb", self.project if self.project.exists() else self.state),
                          ("shm_free_gb", self.tmpfs)):
            try:
                out[key] = round(shutil.disk_usage(path).free / GB, 2)
            except OSError:
                pass
        out["mem_available_gb"] = round(meminfo().get("MemAvailable", 0) / GB, 1)
        return out

    def measured(self, tag: str, fn) -> dict:
        """Run fn() with NVML, RSS and disk sampled; the measurements and fn's result."""
        from gpu_sampling import GpuSampler

        peaks_dir = self.state / "torch_peaks" / f"{self.call_id}-{tag}"
        os.environ["KIMI_TESTBED_TAG"] = tag
        os.environ["KIMI_TESTBED_TORCH_PEAK_DIR"] = str(peaks_dir)
        paths = {"disk": self.project if self.project.exists() else self.state, "shm": self.tmpfs}
        t0 = time.time()
        try:
            with GpuSampler(interval=0.25) as gpu, ProcSampler(tag, paths) as procs:
                result = fn()
        finally:
            os.environ.pop("KIMI_TESTBED_TAG", None)
            os.environ.pop("KIMI_TESTBED_TORCH_PEAK_DIR", None)
        wall = time.time() - t0
        torch_peak = {"max_allocated": 0, "max_reserved": 0}
        for path in peaks_dir.glob("torch-peak-*.json") if peaks_dir.exists() else []:
            try:
                data = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            for key in torch_peak:
                torch_peak[key] = max(torch_peak[key], data.get(key, 0))
        device_used = 0
        for _, snap in gpu.samples:
            for g in snap.gpus:
                device_used = max(device_used, g.memory_used or 0)
        per_gpu = gpu.peak_mib_per_gpu()
        return {
            "result": result, "wall_s": round(wall, 1),
            "gpu_peak_gib": round(max(per_gpu.values()) / 1024, 2) if per_gpu else None,
            "gpu_device_used_peak_gib": round(device_used / GIB, 2) if device_used else None,
            "torch_max_allocated_gib": round(torch_peak["max_allocated"] / GIB, 2),
            "torch_max_reserved_gib": round(torch_peak["max_reserved"] / GIB, 2),
            "host_rss_peak_gib": round(procs.peak_rss / GIB, 2),
            "host_rss_peak_process_gib": round(procs.peak_process_rss / GIB, 2),
            "host_rss_peak_process": procs.peak_process,
            "disk_free_min_gb": round(procs.min_free["disk"] / GB, 2) if procs.min_free["disk"] is not None else None,
            "shm_free_min_gb": round(procs.min_free["shm"] / GB, 2) if procs.min_free["shm"] is not None else None,
            "mem_available_min_gb": round(procs.min_mem_available / GB, 1) if procs.min_mem_available else None,
            "nvml_samples": len(gpu.samples),
        }

    def run_kimi_stage(self, stage: str, timeout: float, extra_env: dict | None = None) -> dict:
        """`kimi-tui run STAGE --project P --wait`, its log followed; stopped with `kimi-tui stop` past timeout."""
        from kimi_tui.runs import list_runs

        env = dict(os.environ, **(extra_env or {}))
        tail: list[str] = []
        timed_out = False

        def go() -> int:
            nonlocal timed_out
            env["KIMI_TESTBED_TAG"] = os.environ.get("KIMI_TESTBED_TAG", stage)
            env["KIMI_TESTBED_TORCH_PEAK_DIR"] = os.environ.get("KIMI_TESTBED_TORCH_PEAK_DIR", "")
            proc = subprocess.Popen([self.kimi_py, "-m", "kimi_tui", "run", stage, "--project", str(self.project),
                                     "--wait"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)

            def pump() -> None:
                assert proc.stdout is not None
                for raw in proc.stdout:
                    line = raw.decode("utf-8", errors="replace").rstrip("\n")
                    tail.append(line)
                    del tail[:-400]
                    if not NOISE.search(line):  # (all of it stays in the run's stdout.log)
                        say(f"  {stage} | {line}")

            reader = threading.Thread(target=pump, daemon=True)
            reader.start()
            try:
                code = proc.wait(timeout=max(1.0, timeout))
            except subprocess.TimeoutExpired:
                timed_out = True
                say(f"  {stage}: past its {timeout:.0f} s in this call: stopping the run")
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                try:
                    self.kimi("stop", stage, "--project", str(self.project), timeout=40)
                except subprocess.TimeoutExpired:
                    say(f"  {stage}: kimi-tui stop did not finish in 40 s")
                code = -1
            reader.join(timeout=10)
            return code

        say(f"--- {stage}: kimi-tui run {stage} --project {self.project} --wait  (timeout {timeout:.0f} s)")
        m = self.measured(stage, go)
        runs = [r for r in list_runs(self.project / "runs") if r.stage == stage]
        run = runs[-1] if runs else None
        record = {k: v for k, v in m.items() if k != "result"}
        record.update({"stage": stage, "exit_code": m["result"], "timed_out": timed_out})
        if run is not None:
            record.update({"run_id": run.run_id, "state": run.state,
                           "run_wall_s": round(run.ended - run.started, 1) if run.ended and run.started else None})
            log = run.path / "stdout.log"
            if log.exists():
                lines = log.read_text(errors="replace").splitlines()
                record["log_tail"] = lines[-15:]
                copy = self.logs / f"stage-{stage}-{self.call_id}.log"
                copy.write_text("\n".join(lines[-3000:]) + "\n")
                self.stage_logs.append(copy)
        else:
            record.update({"state": "not started", "log_tail": tail[-15:]})
        if timed_out:
            record["state"] = f"stopped at the call's time limit ({record.get('state')})"
        record["usage_after"] = self.usage()
        return record

    # -- steps -----------------------------------------------------------------------------------------

    def step_build(self, timeout: float) -> dict:
        texts = [str(p) for p in sorted((REPO / "sample_data").glob("*.csv"))]
        self.base.parent.mkdir(parents=True, exist_ok=True)
        for folder in (self.base, self.glm4):
            shutil.rmtree(folder, ignore_errors=True)
        cmd = [self.wrapper, str(BED / "build_checkpoint.py"), "--size", self.size, "--checkout", str(self.checkout),
               "--out", str(self.models), "--base-dir", str(self.base), "--glm4-dir", str(self.glm4),
               "--device", "cpu" if self.args.cpu else "cuda"]
        for path in texts:
            cmd += ["--texts", path]
        say(f"--- build: {' '.join(cmd)}")

        def go() -> int:
            env = dict(os.environ, PYTHONPATH="")
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
            assert proc.stdout is not None
            for raw in proc.stdout:
                line = raw.decode("utf-8", errors="replace").rstrip()
                if "Warning" in line or line.startswith("  warnings.warn"):
                    continue
                say(f"  build | {line}")
            try:
                return proc.wait(timeout=max(1.0, timeout))
            except subprocess.TimeoutExpired:
                proc.kill()
                return -9

        m = self.measured("build", go)
        record = {k: v for k, v in m.items() if k != "result"}
        record.update({"stage": "build", "exit_code": m["result"],
                       "state": "succeeded" if m["result"] == 0 else "failed", "build_report": self.build_report()})
        if m["result"] == 0:
            record["init_cost"] = self.init_cost()
            if (self.project / "kimi-tui.toml").exists():
                shutil.rmtree(self.project)  # a new checkpoint: a new project (its outputs derive from the old one)
            for name in ("converted", "export", "final-merged"):  # what its links pointed at
                shutil.rmtree(self.tmpfs / name, ignore_errors=True)
            record["config"] = self.make_project()
            prep = self.ensure_prepared()
            if prep is not None:
                record["prepare"] = {k: prep.get(k) for k in ("state", "wall_s", "log_tail")}
                if prep.get("state") != "succeeded":
                    record["state"] = "failed (prepare)"
        record["usage_after"] = self.usage()
        return record

    def init_cost(self) -> dict:
        """Seconds torch's CPU init takes for the weights the official convert and export build and discard."""
        n = self.params()
        code = ("import torch, time, json\n"
                "out = {}\n"
                "for name, dt in (('fp32', torch.float32), ('bf16', torch.bfloat16)):\n"
                "    x = torch.zeros(50_000_000, dtype=dt)\n"
                "    x.normal_(0, 0.02); t = time.time(); x.normal_(0, 0.02); a = time.time() - t\n"
                "    t = time.time(); x.uniform_(-0.1, 0.1); b = time.time() - t\n"
                "    out[name] = [5e7 / a, 5e7 / b]\n"
                "print(json.dumps(out))\n")
        try:
            out = subprocess.run([self.wrapper, "-c", code], capture_output=True, text=True, timeout=120,
                                 env=dict(os.environ, PYTHONPATH=""))
            rates = json.loads(out.stdout.strip().splitlines()[-1])
        except Exception as exc:  # a measurement, never the end of the call
            return {"error": f"{type(exc).__name__}: {exc}"}
        result = {}
        for name, (normal, uniform) in rates.items():
            # convert builds KimiAudioModel (LM + Whisper encoder), export the LM: normal_ over the weights
            # (_init_weights) + kaiming uniform over the Linear weights (their constructors)
            convert = n["kimi_audio"] / normal + n["kimi_audio"] / uniform
            export = n["lm"] / normal + n["lm"] / uniform
            result[name] = {"normal_per_s": round(normal), "uniform_per_s": round(uniform),
                            "convert_s": round(convert), "export_s": round(export)}
        say("  discarded random init on this CPU (the official convert/export build then overwrite): "
            + "; ".join(f"{k} convert ~{v['convert_s']} s, export ~{v['export_s']} s" for k, v in result.items()))
        return result

    def step_stage(self, stage: str, timeout: float) -> dict:
        extra: dict[str, str] = {}
        if stage in ("convert", "export") and self.skip_init:
            extra["KIMI_TESTBED_SKIP_INIT"] = "1"
        if stage == "train" and not self.args.cpu and self.args.cap_gib > 0:
            extra["KIMI_TESTBED_GPU_CAP_GIB"] = repr(self.args.cap_gib)
        if stage == "train" and self.args.cpu:
            extra["KIMI_TESTBED_GPU_CAP_GIB"] = repr(self.args.cap_gib)  # exercised: says "no CUDA here"
        merged_link = None
        if stage == "convert" and (self.project / "models" / "base").exists():
            say("  removing the previous converted model (a new convert writes it whole)")
            self.clear(self.project / "models" / "base")
        if stage == "export":
            # kimi-tui keeps a previous export aside (exports/final.<time>): 22.6 GB the disk has no room for
            for old in [self.project / "exports" / "final", *(self.project / "exports").glob("final.*")]:
                if old.exists() and (old.is_symlink() or any(old.iterdir())):
                    say(f"  removing a previous export: {old}")
                    self.clear(old)
            shutil.rmtree(self.tmpfs / "final-merged", ignore_errors=True)
            n = self.params()
            if self.merged_on_shm(n["kimi_audio"] * self.bytes_per_param("convert")):
                # the worker saves the merged model to training/final-merged.partial, then renames it to
                # training/final-merged: a link there makes it land in /dev/shm (the rename moves the link)
                target = self.tmpfs / "final-merged"
                target.mkdir(parents=True, exist_ok=True)
                merged_link = self.project / "training" / "final-merged.partial"
                if merged_link.is_symlink() or merged_link.exists():
                    merged_link.unlink() if merged_link.is_symlink() else shutil.rmtree(merged_link)
                merged_link.symlink_to(target, target_is_directory=True)
                say(f"  LoRA-merged model -> {target} (tmpfs)")
        record = self.run_kimi_stage(stage, timeout, extra)
        record["env"] = extra
        record["placement"] = {"tmpfs": str(self.tmpfs), "base_model": str(self.base),
                               "merged_on_tmpfs": merged_link is not None, "on_tmpfs": sorted(self.on_tmpfs)}
        if stage == "export":
            for leftover in (self.project / "training" / "final-merged", merged_link):
                if leftover is not None and leftover.is_symlink():
                    leftover.unlink()
            shutil.rmtree(self.tmpfs / "final-merged", ignore_errors=True)
            record["usage_after"] = self.usage()
        if stage == "train":
            record.update(self.train_extras(record))
        if stage == "evaluate":
            record.update(self.evaluate_extras())
        return record

    def longest_sequence(self) -> int | None:
        """Tokens of the longest training sample: audio tokens + transcript + the prompt and specials."""
        path = self.project / "features" / "train.jsonl"
        if not path.exists():
            return None
        longest = 0
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            n = 0
            for m in json.loads(line)["conversation"]:
                n += len(m.get("audio_tokens") or []) + 3 if m.get("message_type") == "audio" else len(str(m["content"])) + 2
            longest = max(longest, n + 2)
        return longest

    def train_extras(self, record: dict) -> dict:
        import inspect

        from kimi_tui import memory

        extras: dict = {"gpu_cap_gib": self.args.cap_gib if not self.args.cpu else None}
        log = "\n".join(record.get("log_tail", []))
        for path in self.stage_logs[-1:]:
            log = path.read_text(errors="replace")
        m = re.search(r"\{'train_runtime': [^}]*\}", log)
        if m:
            extras["trainer_metrics"] = m.group(0)
        m = re.search(r"lora: ([\d,]+) of ([\d,]+) parameters train", log)
        if m:
            extras["trainable_params"] = m.group(1)
        extras["cuda_oom"] = "CUDA out of memory" in log or "OutOfMemoryError" in log
        tokens_longest = self.longest_sequence()
        from kimi_tui.project import Project

        cfg = Project.load(self.project).config
        kwargs: dict = {}
        if "batch_size" in inspect.signature(memory.estimate).parameters:
            kwargs["batch_size"] = cfg.train.batch_size
        params = inspect.signature(memory.estimate).parameters
        if "arch" in params and hasattr(memory, "architecture_of"):  # the configured model's size, as doctor does
            whisper = self.base / "whisper-large-v3"
            kwargs["arch"], _notes = memory.architecture_of(self.base, whisper if whisper.is_dir() else None)
        est = {}
        for label, tokens in (("config max_audio_tokens", cfg.kimi_audio.max_audio_tokens),
                              ("longest sample", tokens_longest)):
            if tokens is None:
                continue
            e = memory.estimate("lora", 3, gpus_per_node=1, nodes=1, tokens=int(tokens), **kwargs)
            est[label] = {"tokens": int(tokens), "gpu_gb": round(e.gpu_gb_per_gpu, 2),
                          "model_states_gb": round(e.model_states_gb, 2), "activations_gb": round(e.activations_gb, 2),
                          "host_ram_gb": round(e.host_ram_gb, 1)}
        # NVML's per-process figure (the stage's processes); the device's used memory if NVML lists no process
        measured = record.get("gpu_peak_gib") or record.get("gpu_device_used_peak_gib")
        extras["measured_from"] = "NVML processes" if record.get("gpu_peak_gib") else "NVML device used"
        if measured:
            measured_gb = measured * GIB / GB
            for value in est.values():
                value["measured_gb"] = round(measured_gb, 2)
                value["estimate_over_measured"] = round(value["gpu_gb"] / measured_gb, 3)
                value["within_15_percent"] = abs(value["gpu_gb"] / measured_gb - 1) <= 0.15
        extras["preflight_estimate"] = est
        doctor = self.kimi("doctor", "--project", str(self.project), "--json", "--gpu-memory-gb", "80",
                           "--tokens", str(tokens_longest or 500), timeout=180)
        try:
            findings = json.loads(doctor.stdout)
            extras["doctor_memory_findings"] = [f["message"] for f in findings
                                                if "GB" in f.get("message", "") or "memory" in f.get("field", "")][:6]
        except ValueError:
            extras["doctor_memory_findings"] = [f"(doctor did not answer JSON: {(doctor.stdout + doctor.stderr)[-300:]})"]
        return extras

    def evaluate_extras(self) -> dict:
        folders = sorted(p for p in (self.project / "evaluations").glob("*") if p.is_dir())
        if not folders or not (folders[-1] / "metrics.json").exists():
            return {}
        try:
            metrics = json.loads((folders[-1] / "metrics.json").read_text())
        except (OSError, ValueError):
            return {}
        summary = {}
        for model, splits in (metrics.get("models") or {}).items():
            summary[model] = {s: round(v.get("cer", float("nan")), 3) for s, v in splits.items() if isinstance(v, dict)}
        return {"cer": summary, "evaluation": str(folders[-1])}

    # -- the whole call ----------------------------------------------------------------------------------

    def run(self) -> int:
        steps = self.plan_steps()
        failed = False
        for step in steps:
            est = ESTIMATE_S[self.size][step]
            left = self.left()
            if failed:
                self.save({"stage": step, "state": "not started: an earlier step failed"})
                continue
            if left < est:
                msg = f"not started: ~{est} s needed, {left:.0f} s left in this call; run `{step}` in the next call"
                say(f"--- {step}: {msg}")
                self.save({"stage": step, "state": msg})
                continue
            problem = self.check_space(step)
            if problem:
                say(f"--- {step}: refused: {problem}")
                self.save({"stage": step, "state": f"refused: {problem}", "usage_before": self.usage()})
                failed = True
                continue
            before = self.usage()
            timeout = left - RESERVE_S
            if step == "build":
                record = self.step_build(timeout)
            else:
                if not (self.project / "kimi-tui.toml").exists():
                    raise SystemExit("no project: run the build step first")
                if step == "extract":
                    prep = self.ensure_prepared()
                    if prep is not None and prep.get("state") != "succeeded":
                        self.save(dict(prep, stage="prepare"))
                        failed = True
                        continue
                record = self.step_stage(step, self.left() - RESERVE_S)
            record["usage_before"] = before
            say(f"--- {step}: {record.get('state')} in {record.get('wall_s')} s")
            self.save(record)
            if record.get("state") != "succeeded":
                failed = True
        say("")
        say(self.summary_text())
        self.export_out()
        return 1 if failed else 0

    def summary_text(self) -> str:
        lines = [f"kimi-audio GPU test bed, call {self.call_id}, size {self.size}, "
                 f"{time.time() - self.t0:.0f} s of {self.args.budget_s:.0f}"]
        lines.append(f"{'step':9} {'state':10} {'wall s':>7} {'GPU GiB':>8} {'torch GiB':>9} {'RSS GiB':>8} "
                     f"{'disk GB':>8} {'shm GB':>7} {'free GB':>8}")
        for r in self.records:
            state = str(r.get("state", ""))
            u = r.get("usage_after") or {}
            lines.append(
                f"{r.get('stage', ''):9} {state[:10]:10} {r.get('wall_s', '-')!s:>7} "
                f"{r.get('gpu_peak_gib') or r.get('gpu_device_used_peak_gib') or '-'!s:>8} "
                f"{r.get('torch_max_reserved_gib', '-')!s:>9} {r.get('host_rss_peak_gib', '-')!s:>8} "
                f"{u.get('project_gb', '-')!s:>8} {u.get('shm_gb', '-')!s:>7} {r.get('disk_free_min_gb', '-')!s:>8}")
            if len(state) > 10:
                lines.append(f"          {state}")
            if r.get("stage") == "train":
                for label, e in (r.get("preflight_estimate") or {}).items():
                    lines.append(f"          preflight ({label}, {e['tokens']} tokens): {e['gpu_gb']} GB"
                                 + (f" vs measured {e['measured_gb']} GB: x{e['estimate_over_measured']}"
                                    f" ({'within' if e['within_15_percent'] else 'outside'} 15 %)" if "measured_gb" in e else ""))
                if r.get("gpu_cap_gib"):
                    lines.append(f"          CUDA allocator capped at {r['gpu_cap_gib']:g} GiB: "
                                 + ("CUDA out of memory" if r.get("cuda_oom") else "no out-of-memory"))
                if r.get("trainer_metrics"):
                    lines.append(f"          {r['trainer_metrics']}")
            if r.get("stage") == "evaluate" and r.get("cer"):
                lines.append(f"          CER: {r['cer']}")
            if r.get("stage") == "build" and r.get("build_report"):
                b = r["build_report"]
                lines.append(f"          LM {b.get('lm_params', 0):,} + Whisper encoder {b.get('whisper_encoder_params', 0):,} "
                             f"parameters; base {b.get('bytes', {}).get('base_model', 0) / GB:.2f} GB")
            if r.get("state") not in ("succeeded", None) and r.get("log_tail"):
                lines.extend(f"          | {ln}" for ln in r["log_tail"][-8:])
        lines.extend(f"note: {n}" for n in self.notes)
        return "\n".join(lines) + "\n"


def main() -> int:
    argv = sys.argv[1:]
    args = parse_args(argv)
    if os.environ.get("KIMI_TESTBED_PHASE2") != "1":
        phase1(args, argv)  # re-executes this file under the kimi-tui interpreter
        return 0
    os.environ.pop("KIMI_TESTBED_PHASE2", None)
    os.environ.pop("PYTHONPATH", None)
    return Bed(args).run()


if __name__ == "__main__":
    raise SystemExit(main())
