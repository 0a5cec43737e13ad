"""Retry policy as a value: full-jitter exponential backoff, Retry-After honoured but capped (pure).

There is no attempt limit on purpose: a transient failure is backpressure, not loss. The engine keeps
the batch, pauses the partitions feeding the workspace, and keeps trying at most every ``max_seconds``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from connector.config import SinkSettings


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Backoff bounds in seconds."""

    initial_seconds: float = 0.2
    max_seconds: float = 30.0
    retry_after_cap_seconds: float = 120.0

    @classmethod
    def from_settings(cls, settings: SinkSettings) -> RetryPolicy:
        """The policy configured for the sink."""
        return cls(settings.retry_initial_seconds, settings.retry_max_seconds, settings.retry_after_cap_seconds)

    def delay(self, attempt: int, retry_after: float | None = None, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry number ``attempt`` (1 = first retry).

        Full jitter (uniform in [0, min(max, initial·2^(attempt-1))]) spreads replicas' retries apart; a
        server's Retry-After is a floor, capped so a bogus value cannot stall the pipeline for hours.
        """
        ceiling = min(self.max_seconds, self.initial_seconds * (2 ** min(attempt - 1, 30)))
        jittered = (rng or random).uniform(0.0, ceiling)
        if retry_after is not None:
            return max(jittered, min(retry_after, self.retry_after_cap_seconds))
        return jittered
