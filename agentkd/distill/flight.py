"""What a candidate costs on this machine: the loop's in-flight accounting.

Several candidates are written and measured side by side on one student, so each one's own latency
overstates what it costs the build. ``Flight`` counts the time with at least one candidate in flight and
divides it by the candidates decided: the throughput the wall-time budget plans against.
"""

from __future__ import annotations

import threading
import time

FIRST_CANDIDATE_S = 90.0  # a 0.5B student and a 1.5B teacher on 2 cores: ~60-120 s per candidate


class Flight:
    """The candidates in flight (from the start of their writing to their decision), and what they cost."""

    def __init__(self) -> None:
        self.started: dict[str, float] = {}  # scenario id -> when its candidate's writing began
        self.busy = 0.0  # seconds with at least one candidate in flight, up to the last decision
        self.decided = 0  # candidates decided (admitted or rejected) in this process
        self._busy_since: float | None = None  # when the current stretch with candidates in flight began
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.started)

    def began(self, scenario_id: str) -> None:
        with self._lock:
            now = time.time()
            if not self.started:
                self._busy_since = now
            self.started[scenario_id] = now

    def ended(self, scenario_id: str, *, decided: bool) -> None:
        """``scenario_id``'s candidate left the flight: decided, or written to nothing (``decided=False``)."""
        with self._lock:
            if self.started.pop(scenario_id, None) is None or self._busy_since is None:
                return
            now = time.time()
            if decided:
                self.decided += 1
            if decided or not self.started:  # the busy time counts up to a decision (or an idle stretch)
                self.busy += now - self._busy_since
                self._busy_since = now if self.started else None

    def seconds(self) -> float:
        """What one candidate costs here (teacher writing, then its paired trials): the time candidates were in
        flight per candidate decided, else a cautious first guess."""
        return self.busy / self.decided if self.decided else FIRST_CANDIDATE_S
