"""The Kimi-Audio memory estimator reproduces KIMI_AUDIO.md's table (DeepSpeed's own formulas, Psi = 10.40 B)."""

from __future__ import annotations

import pytest

from kimi_tui.memory import Setup, estimate, setups_that_fit


def close(value: float, expected: float, tolerance: float = 0.15) -> bool:
    return abs(value - expected) <= tolerance * expected


@pytest.mark.parametrize(
    ("kwargs", "gpu_states", "host"),
    [
        (dict(method="full", zero_stage=3), 190, None),
        (dict(method="full", zero_stage=2), 208, None),
        (dict(method="full", zero_stage=3, offload_optimizer=True), 23, 250),
        (dict(method="full", zero_stage=3, offload_optimizer=True, offload_param=True), 2.4, 281),
        (dict(method="full", zero_stage=3, gpus_per_node=4), 49, None),
        (dict(method="full", zero_stage=3, gpus_per_node=8), 26, None),
        (dict(method="lora", zero_stage=3), 21, None),
    ],
)
def test_model_states_match_the_table(kwargs, gpu_states, host) -> None:
    est = estimate(tokens=500, **kwargs)
    assert close(est.model_states_gb, gpu_states), est
    if host is not None:
        assert close(est.host_ram_gb, host), est


def test_optimizer_offload_host_ram_spans_the_documented_range() -> None:
    est = estimate("full", 3, offload_optimizer=True)
    assert close(est.host_ram_low_gb, 166) and close(est.host_ram_gb, 250)


def test_activations_come_on_top_and_lora_lands_at_30_to_35_gb() -> None:
    short, long = estimate("lora", 3, tokens=100), estimate("lora", 3, tokens=500)
    assert long.gpu_gb_per_gpu - short.gpu_gb_per_gpu == pytest.approx(400 * 8.5e-3, rel=1e-6)
    assert 28 <= long.gpu_gb_per_gpu <= 35
    assert long.activations_gb == pytest.approx(500 * 8.5e-3 + 3.0)


def test_offload_notes_say_it_is_slow() -> None:
    notes = " ".join(estimate("full", 3, True, True).notes)
    assert "3.27 s" in notes and "0.19-0.21 s" in notes


def test_one_80_gb_gpu_with_128_gb_host_fits_only_lora() -> None:
    assert setups_that_fit(80, 1, 128, 500) == [Setup("lora", 3)]


def test_more_host_ram_lets_optimizer_offload_fit_and_eight_gpus_fit_plain_zero3() -> None:
    assert Setup("full", 3, offload_optimizer=True) in setups_that_fit(80, 1, 512, 500)
    assert Setup("full", 3) not in setups_that_fit(80, 1, 512, 500)
    assert Setup("full", 3) in setups_that_fit(80, 4, 512, 500)
    assert Setup("full", 3) in setups_that_fit(80, 8, 512, 500)


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError):
        estimate("qlora", 3)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        estimate("full", 1)
