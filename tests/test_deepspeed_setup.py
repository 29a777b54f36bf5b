"""DeepSpeed's one-time op builds are announced before they start, so a quiet stage never looks hung."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("deepspeed")

from kimi_tui.workers import deepspeed_setup as ds  # noqa: E402


@pytest.fixture
def extensions(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path / "torch_extensions"))
    return tmp_path / "torch_extensions"


def test_an_offloaded_optimizer_announces_the_cpu_adam_build_until_torch_has_cached_it(extensions, tmp_path, capsys):
    assert ds.ops_it_builds(offload_optimizer=True)[0] == "CPUAdamBuilder"
    assert ds.unbuilt_ops(["CPUAdamBuilder"]) == [("cpu_adam", extensions / "cpu_adam")]
    config = ds.prepare_deepspeed(tmp_path / "out", 2, True, False, cuda=False, is_main=True)
    assert config["zero_optimization"]["offload_optimizer"]["device"] == "cpu"
    lines = capsys.readouterr().out.splitlines()
    [line] = [line for line in lines if "cpu_adam" in line]
    assert line.startswith("DeepSpeed builds its cpu_adam op on first use (about a minute, once per machine")
    assert str(extensions / "cpu_adam") in line
    (extensions / "cpu_adam").mkdir(parents=True)
    (extensions / "cpu_adam" / "cpu_adam.so").write_bytes(b"\x7fELF")  # what torch's JIT loader leaves
    assert ds.unbuilt_ops(["CPUAdamBuilder"]) == []
    ds.prepare_deepspeed(tmp_path / "out", 2, True, False, cuda=False, is_main=True)
    assert "cpu_adam" not in capsys.readouterr().out


def test_a_pre_built_op_and_a_run_that_builds_none_are_not_announced(extensions, monkeypatch, capsys):
    import deepspeed.git_version_info as info
    from deepspeed.accelerator import get_accelerator

    assert ds.ops_it_builds(offload_optimizer=False) == ["ShareMemCommBuilder"]  # torch's AdamW: no FusedAdam
    monkeypatch.setattr(info, "installed_ops", {**info.installed_ops, "cpu_adam": True, "deepspeed_shm_comm": True})
    monkeypatch.setattr(info, "accelerator_name", get_accelerator()._name)
    assert ds.unbuilt_ops(["CPUAdamBuilder"]) == []  # DS_BUILD_OPS=1 install: imported, never compiled
    assert ds.announce_op_builds(True) == [] and capsys.readouterr().out == ""


def test_the_cpu_accelerators_shared_memory_collectives_are_announced_too(extensions, capsys):
    """DeepSpeed's comm backend builds them on the CPU whatever the world size (seen on one torchrun rank)."""
    from deepspeed.accelerator import get_accelerator

    if get_accelerator()._name != "cpu":
        pytest.skip("the shared-memory collectives are the CPU accelerator's")
    [line] = ds.announce_op_builds(False)
    assert "deepspeed_shm_comm op on first use" in line and line == capsys.readouterr().out.strip()


def test_the_cache_folder_follows_torchs_rule(monkeypatch):
    from torch.utils.cpp_extension import _get_build_directory

    monkeypatch.delenv("TORCH_EXTENSIONS_DIR", raising=False)
    assert ds.torch_extensions_root() / "cpu_adam" == Path(_get_build_directory("cpu_adam", False))
