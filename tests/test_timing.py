"""utils.timing: warm-up, repetitions, the median and the device synchronisation (with a fake clock, not wall time)."""

import pytest
import torch

from utils import timing
from utils.timing import Timing, conditions, time_it


@pytest.fixture
def clock(monkeypatch):
    """perf_counter advances by the seconds each call of the timed function 'takes'."""
    state = {"now": 0.0, "costs": [], "calls": 0, "syncs": 0}

    def work():
        state["now"] += state["costs"][state["calls"]]
        state["calls"] += 1

    monkeypatch.setattr(timing.time, "perf_counter", lambda: state["now"])
    monkeypatch.setattr(timing, "synchronize", lambda device=None: state.__setitem__("syncs", state["syncs"] + 1))
    state["work"] = work
    return state


def test_warm_up_is_not_timed_and_the_median_resists_one_slow_run(clock):
    clock["costs"] = [9.0, 1.0, 1.5, 50.0, 0.5, 1.25]  # a slow warm-up, then one disturbed repetition
    t = time_it(clock["work"], repeat=5, warmup=1)
    assert t.seconds == (1.0, 1.5, 50.0, 0.5, 1.25)
    assert t.median == 1.25 and t.fastest == 0.5 and t.slowest == 50.0
    assert clock["syncs"] == 6  # before the clock starts, and after each repetition


def test_number_gives_seconds_per_call(clock):
    clock["costs"] = [1.0] * 2 + [2.0] * 6
    t = time_it(clock["work"], repeat=2, number=3, warmup=2)
    assert t.seconds == (2.0, 2.0)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError):
        time_it(lambda: None, repeat=0)


def test_a_timing_prints_its_median_and_range():
    assert str(Timing((0.0123, 0.0119, 0.014))) == "12.3 ms (median of 3, 11.9-14.0 ms)"
    assert Timing((0.002,)).ms == 2.0


def test_conditions_name_the_device_threads_and_torch():
    text = conditions("cpu")
    assert text.startswith("cpu, ") and f"{torch.get_num_threads()} CPU threads" in text and torch.__version__ in text


def test_synchronize_on_a_cpu_returns_at_once():
    timing.synchronize("cpu")
    timing.synchronize()
