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


# ---------------------------------------------------------------------------- sized from the model's config


def test_the_parameter_count_is_exactly_the_published_kimi_audio_7b() -> None:
    from kimi_tui.memory import KIMI_AUDIO_7B, PSI, parameters

    assert KIMI_AUDIO_7B.lm_parameters == 9_766_334_464  # with its 6 MIMO layers
    assert KIMI_AUDIO_7B.whisper_parameters == 636_968_960  # the Whisper-large-v3 encoder
    assert parameters() == PSI == 10_403_303_424


def write_config(folder, **values) -> None:
    import json

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(values), encoding="utf-8")


TINY_LM = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, kimia_mimo_layers=1,
               num_attention_heads=4, num_key_value_heads=2, vocab_size=1000, kimia_adaptor_input_dim=32)
TINY_WHISPER = dict(encoder_layers=1, d_model=8, encoder_ffn_dim=16, num_mel_bins=4, max_source_positions=10)


def test_a_base_model_folder_is_sized_from_its_config_json(tmp_path) -> None:
    from kimi_tui.memory import architecture_of, parameters

    write_config(tmp_path / "base", **TINY_LM)
    write_config(tmp_path / "base" / "whisper-large-v3", **TINY_WHISPER)
    arch, notes = architecture_of(tmp_path / "base")
    assert notes == []
    h, i, v, kv = 64, 128, 1000, 32
    layer = (h * h + h) + 2 * (h * kv + kv) + h * h + 3 * h * i + 2 * h
    lm = v * h + 3 * layer + 2 * h + 2 * v * h + (32 * h + h) + (h * h + h) + 2 * h
    d, f = 8, 16
    whisper = (4 * d * 3 + d) + (d * d * 3 + d) + 10 * d + (4 * d * d + 3 * d + 2 * d + d * f + f + f * d + d + 2 * d) + 2 * d
    assert parameters(arch) == lm + whisper
    est = estimate("full", 3, arch=arch)
    assert est.model_states_gb < 0.01 and est.host_ram_gb < 0.01 and est.activations_gb < 0.05
    assert any(str(tmp_path / "base") in n for n in est.notes)
    from kimi_tui.memory import SETUPS

    assert setups_that_fit(4, 1, 4, 500, arch) == list(SETUPS)  # a 4 GB GPU trains it every way
    assert setups_that_fit(4, 1, 4, 500) == []  # where 7 B fits no way


def test_a_missing_or_unreadable_config_falls_back_to_the_published_size_and_says_so(tmp_path) -> None:
    from kimi_tui.memory import KIMI_AUDIO_7B, architecture_of

    arch, [note] = architecture_of(tmp_path / "nowhere")
    assert arch == KIMI_AUDIO_7B and "does not exist" in note and "published Kimi-Audio-7B" in note
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text("{not json", encoding="utf-8")
    arch, [note] = architecture_of(tmp_path / "broken")
    assert arch == KIMI_AUDIO_7B and "cannot be read" in note and "10.40 B" in note
    write_config(tmp_path / "no-whisper", **TINY_LM)
    arch, [note] = architecture_of(tmp_path / "no-whisper")
    assert arch.hidden_size == 64 and arch.d_model == KIMI_AUDIO_7B.d_model and "Whisper-large-v3" in note
    arch, [note] = architecture_of(None)
    assert arch == KIMI_AUDIO_7B and "no base model given" in note


def test_the_estimate_knows_the_batch_size_and_what_kimi_tuis_batching_keeps():
    from kimi_tui import memory as m

    one = m.estimate("lora", 0, tokens=150)
    batched_one = m.estimate("lora", 0, tokens=150, batch_size=1, batched=True)
    thirty_two = m.estimate("lora", 0, tokens=150, batch_size=32, batched=True)
    # 32 sequences keep 32x the per-token activations of one ...
    per_token = (one.activations_gb - m._logits_gb(m.KIMI_AUDIO_7B)) / 150
    assert thirty_two.activations_gb == pytest.approx(
        32 * 150 * per_token + 32 * 150 * m.LOSS_ROW_FRACTION * 168448 * m.LOSS_ROW_BYTES_PER_VOCAB / 1e9)
    # ... but no full-vocabulary logits: the batched path puts only the loss rows through the heads
    assert batched_one.activations_gb < one.activations_gb
    assert thirty_two.gpu_gb_per_gpu > one.gpu_gb_per_gpu + 30
    assert any("32 x 150 tokens" in note and "loss rows only" in note for note in thirty_two.notes)


def test_the_preflight_refuses_a_batch_that_cannot_fit_and_names_the_batch():
    from kimi_tui.engines.kimi_audio_preflight import preflight

    findings = preflight(method="lora", zero_stage=0, batch_size=96, max_audio_tokens=500, gpu_memory_gb=80,
                         gpus_here=1, host_ram=512, read_machine=False, probe={}, batching="kimi-tui")
    oom = [f for f in findings if f.level == "error" and f.field == "deepspeed.stage"]
    assert oom and "96 x 500 tokens" in oom[0].message
    small = preflight(method="lora", zero_stage=0, batch_size=8, max_audio_tokens=150, gpu_memory_gb=80,
                      gpus_here=1, host_ram=512, read_machine=False, probe={}, batching="kimi-tui")
    assert not [f for f in small if f.level == "error" and f.field == "deepspeed.stage"]


# Peaks measured on one H200 (NVML, the training process), 2026-12-01, random-initialised full-size
# Kimi-Audio-7B (benchmarks/kimi_audio_gpu/: run_stages.py and kimi_audio_gpu.py), LoRA r=8, bf16.
MEASURED_H200 = [
    # (what ran, estimate arguments, measured peak in GiB)
    ("the train stage: kimi-tui batching, 3 x 69 tokens", dict(tokens=69, batch_size=3, batched=True), 21.95),
    ("the official loop: micro-batch 1 x 150 tokens", dict(tokens=150, batch_size=1, batched=False), 22.25),
    ("kimi-tui batching: 48 x 150 tokens", dict(tokens=150, batch_size=48, batched=True), 71.40),
]


@pytest.mark.parametrize("what, kwargs, measured_gib", MEASURED_H200, ids=[m[0] for m in MEASURED_H200])
def test_the_lora_estimate_is_within_15_percent_of_the_peak_measured_at_full_size(what, kwargs, measured_gib):
    from kimi_tui import memory as m

    estimate = m.estimate("lora", 0, **kwargs).gpu_gb_per_gpu
    measured = measured_gib * 2**30 / 1e9
    assert 0.85 <= estimate / measured <= 1.15, f"{what}: estimate {estimate:.1f} GB, measured {measured:.1f} GB"
    assert estimate >= measured * 0.98  # and errs on the side of fitting: never far below what ran
