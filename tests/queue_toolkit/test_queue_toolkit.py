"""The shared queue toolkit: backoff, parking, the status builder and the loop base.

Both backends' workers build on these; the tests here pin the rules themselves, the
backend tests (tests/embedded, tests/remote) that each backend uses them.
"""

from __future__ import annotations

import threading
from uuid import UUID, uuid4

import pytest
from hypothesis import given
from hypothesis import strategies as st

from memobase_integrations.queue import (
    BackgroundLoop,
    Disposition,
    StopOutcome,
    backoff_delay,
    decide,
    memory_status,
    retry_delay,
    with_default_error,
)
from memobase_integrations.settings import FlushPolicy
from memobase_integrations.values import UserStatus

# -- backoff ----------------------------------------------------------------------------------


def highest(a: float, b: float) -> float:
    return b


def lowest(a: float, b: float) -> float:
    return a


def test_backoff_doubles_from_the_base_and_stops_at_the_cap() -> None:
    assert [backoff_delay(n, 2.0, 300.0, rand=lowest) for n in (1, 2, 3, 4)] == [2, 4, 8, 16]
    assert backoff_delay(9, 2.0, 300.0, rand=lowest) == 300.0  # 512 capped
    assert backoff_delay(10_000, 2.0, 300.0, rand=lowest) == 300.0  # no overflow


def test_jitter_stretches_by_at_most_ten_percent_and_never_past_the_cap() -> None:
    """The embedded worker used to add up to 10% *after* capping (a 300 s cap meant up to
    330 s): the jitter now comes before the cap."""
    assert backoff_delay(1, 2.0, 300.0, rand=highest) == pytest.approx(2.2)
    assert backoff_delay(9, 2.0, 300.0, rand=highest) == 300.0
    assert backoff_delay(8, 2.0, 300.0, rand=highest) == pytest.approx(281.6)
    assert backoff_delay(9, 2.0, 280.0, rand=highest) == 280.0
    # a jitter source out of range is clamped, so even a broken one cannot break the bounds
    assert backoff_delay(20, 2.0, 300.0, rand=lambda a, b: 5.0) == 300.0
    assert backoff_delay(1, 2.0, 300.0, rand=lambda a, b: 0.0) == 2.0


@given(
    attempts=st.integers(min_value=0, max_value=200),
    base=st.floats(min_value=0.001, max_value=1000),
    cap=st.floats(min_value=0.001, max_value=10_000),
)
def test_backoff_never_exceeds_the_cap_nor_comes_early(
    attempts: int, base: float, cap: float
) -> None:
    delay = backoff_delay(attempts, base, cap)
    assert 0 < delay <= cap
    assert delay >= min(cap, base * 2.0 ** min(30, max(0, attempts - 1)))


def test_retry_delay_reads_the_policy() -> None:
    policy = FlushPolicy(retry_base_seconds=0.5, retry_max_seconds=3.0)
    assert all(retry_delay(policy, n) <= 3.0 for n in range(1, 40))
    assert all(0.5 <= retry_delay(policy, 1) <= 0.55 for _ in range(50))


# -- parking ----------------------------------------------------------------------------------


def test_parking_rules() -> None:
    forever = FlushPolicy(max_attempts=None)
    three = FlushPolicy(max_attempts=3)
    assert decide(forever, 1000) is Disposition.RETRY
    assert decide(three, 2) is Disposition.RETRY
    assert decide(three, 3) is Disposition.PARK
    assert decide(forever, 1, permanent=True) is Disposition.PARK
    # a send whose answer was lost is resolved first, whatever its count
    assert decide(three, 50, uncertain=True) is Disposition.RETRY


# -- status -----------------------------------------------------------------------------------


def test_status_lists_users_with_work_sorted_and_sums_them() -> None:
    a, b, idle = UUID(int=2), UUID(int=1), UUID(int=3)
    status = memory_status(
        "remote",
        [
            UserStatus(a, pending_turns=2, buffered_tokens=10, failed=1, last_error="x"),
            UserStatus(b, buffered_tokens=5),
            UserStatus(idle),
        ],
    )
    assert [u.user_id for u in status.users] == [b, a]  # the idle user is left out
    assert (status.pending_turns, status.buffered_tokens, status.failed) == (2, 15, 1)
    asked = uuid4()
    one = memory_status("embedded", [], asked=asked)
    assert one.users == (UserStatus(asked),) and one.backend == "embedded"


def test_default_error_fills_only_pending_users_without_an_error() -> None:
    a, b, c = uuid4(), uuid4(), uuid4()
    status = memory_status(
        "embedded",
        [
            UserStatus(a, pending_turns=1),
            UserStatus(b, pending_turns=1, last_error="own"),
            UserStatus(c, buffered_tokens=3),
        ],
    )
    errors = {u.user_id: u.last_error for u in with_default_error(status, "no LLM").users}
    assert errors == {a: "no LLM", b: "own", c: None}


# -- the loop base ----------------------------------------------------------------------------


class Recorder(BackgroundLoop):
    def __init__(self, block: threading.Event | None = None, fail_first: bool = False) -> None:
        super().__init__("test-loop", poll_seconds=0.01)
        self.cycles = 0
        self.drained = False
        self.finished = False
        self.block = block
        self.entered = threading.Event()
        self.fail_first = fail_first

    def _cycle(self) -> bool:
        self.cycles += 1
        self.entered.set()
        if self.fail_first and self.cycles == 1:
            raise RuntimeError("a bug in one cycle")
        if self.block is not None:
            self.block.wait(30)
        return False

    def _drain(self) -> None:
        self.drained = True

    def _finish(self) -> None:
        self.finished = True


def test_a_loop_drains_and_finishes_within_its_budget() -> None:
    loop = Recorder(fail_first=True)
    loop.start()
    assert loop.entered.wait(30)
    while loop.cycles < 2:  # the failing cycle did not end the thread
        loop.wake()
        threading.Event().wait(0.01)
    assert loop.close(30) is StopOutcome.FINISHED
    assert loop.drained and loop.finished and not loop.running
    loop.start()  # closed: no restart
    assert not loop.running


def test_close_without_drain_skips_it() -> None:
    loop = Recorder()
    loop.start()
    assert loop.close(30, drain=False) is StopOutcome.FINISHED
    assert not loop.drained and loop.finished


def test_a_blocked_loop_is_aborted_then_abandoned() -> None:
    block = threading.Event()
    loop = Recorder(block=block)
    loop.start()
    assert loop.entered.wait(30)
    aborted: list[bool] = []

    def abort() -> None:
        aborted.append(True)
        block.set()  # what shutting a socket down does to a blocked request

    assert loop.close(0.0, abort=abort) is StopOutcome.FINISHED
    assert aborted == [True] and loop.finished

    stuck = Recorder(block=threading.Event())
    stuck.start()
    assert stuck.entered.wait(30)
    assert stuck.close(0.0) is StopOutcome.TIMED_OUT
    assert stuck.abandoned and stuck.closing
    assert stuck.block is not None
    stuck.block.set()


def test_an_idle_loop_can_run_only_its_drain() -> None:
    loop = Recorder()
    assert loop.close(30, run_if_idle=True) is StopOutcome.FINISHED
    assert loop.drained and loop.cycles == 0
    never = Recorder()
    assert never.close(30) is StopOutcome.FINISHED and not never.drained


@pytest.mark.parametrize("timeout", [0.0, 5.0])
def test_close_from_the_loop_thread_itself_does_not_deadlock(timeout: float) -> None:
    outcome: list[StopOutcome] = []

    class SelfClosing(Recorder):
        def _cycle(self) -> bool:
            outcome.append(self.close(timeout))
            return False

    loop = SelfClosing()
    loop.start()
    deadline = threading.Event()
    for _ in range(3000):
        if outcome:
            break
        deadline.wait(0.01)
    assert outcome == [StopOutcome.TIMED_OUT]  # it is still running: it is the caller
