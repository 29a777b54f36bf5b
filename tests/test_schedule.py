"""The save policy: every run leaves at least two checkpoints and the final model."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kimi_tui.engines import compute_schedule
from kimi_tui.errors import KimiTuiError


def test_the_seed_run_counts_thirty_steps_and_saves_three_times() -> None:
    # 9 clips, batch 1, accumulation 4, 10 epochs: ceil(9 / 4) = 3 steps per epoch, as the seed report saw.
    s = compute_schedule(9, epochs=10, batch_size=1, gradient_accumulation_steps=4)
    assert (s.steps_per_epoch, s.total_steps, s.checkpoint_steps) == (3, 30, (10, 20, 30))


def test_the_seed_save_steps_saves_nothing_before_the_end() -> None:
    s = compute_schedule(9, epochs=10, batch_size=1, gradient_accumulation_steps=4, save_steps=1000)
    assert s.checkpoint_steps == (30,)


def test_tiny_data_on_many_gpus_has_one_step_per_epoch() -> None:
    s = compute_schedule(9, epochs=5, batch_size=1, gradient_accumulation_steps=1, num_gpus=8)
    assert (s.steps_per_epoch, s.total_steps) == (2, 10)


@given(st.integers(1, 5000), st.integers(1, 50), st.integers(1, 16), st.integers(1, 16), st.integers(1, 8))
def test_auto_policy_always_leaves_two_checkpoints(n, epochs, batch, accum, gpus) -> None:
    s = compute_schedule(n, epochs=epochs, batch_size=batch, gradient_accumulation_steps=accum, num_gpus=gpus)
    assert s.checkpoint_steps[-1] == s.total_steps
    if s.total_steps >= 2:
        assert len(s.checkpoint_steps) >= 2


def test_no_samples_is_an_error() -> None:
    with pytest.raises(KimiTuiError, match="no training samples"):
        compute_schedule(0, epochs=1, batch_size=1, gradient_accumulation_steps=1)
