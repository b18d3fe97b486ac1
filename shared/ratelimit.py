"""Request budgets per key (a caller, a unit, a source): what they allow, and their settings.

Each budget is a GCRA (the generic cell rate algorithm, a token bucket kept as one number per
key: the instant its bucket would be full again), so a key costs one float and a check a few
operations. Pure: the clock is the caller's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.settings import Environment


class Budget:
    """`rate` requests a second sustained per key, `burst` at once; a rate of 0 allows all."""

    def __init__(self, rate: float, burst: int, *, max_keys: int = 100_000) -> None:
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.tolerance = self.interval * burst
        self.max_keys = max_keys
        # The instant each key's bucket is full again ("theoretical arrival time").
        self._full_at: dict[str, float] = {}

    def wait(self, key: str, now: float) -> float:
        """Seconds until `key` may be charged one request; 0: now."""
        if self.interval == 0.0:
            return 0.0
        full_at = max(self._full_at.get(key, now), now)
        return max(0.0, full_at + self.interval - now - self.tolerance)

    def charge(self, key: str, now: float) -> None:
        """Charge `key` one request (after `wait` said 0)."""
        if self.interval == 0.0:
            return
        if len(self._full_at) >= self.max_keys:
            self._forget(now)
        self._full_at[key] = max(self._full_at.get(key, now), now) + self.interval

    def take(self, key: str, now: float) -> float:
        """Charge `key` one request if it may be; else the seconds to wait (nothing charged)."""
        waiting = self.wait(key, now)
        if waiting == 0.0:
            self.charge(key, now)
        return waiting

    def _forget(self, now: float) -> None:
        # A key whose bucket is full again is the same as an unknown one.
        self._full_at = {k: t for k, t in self._full_at.items() if t > now}
        if len(self._full_at) >= self.max_keys:
            # Still full (keys from more addresses than it can hold): forgetting them all
            # lets some requests through rather than growing without bound.
            self._full_at.clear()


def retry_after(seconds: float) -> str:
    """The Retry-After header's value: whole seconds, at least 1."""
    return str(max(1, math.ceil(seconds)))


class RateLimitSettings(BaseSettings):
    """`MOTCUA_HTTP_*`: the request budgets (requests a second sustained, and a burst).

    A rate of 0 turns that budget off. `rate_limits` auto: on in production only, so tests,
    benchmarks and the demo run unthrottled.
    """

    model_config = SettingsConfigDict(env_prefix="MOTCUA_HTTP_", extra="ignore", frozen=True)

    rate_limits: Literal["auto", "on", "off"] = "auto"
    # One signed-in caller (a counter clerk or an officer): a person, a few requests a minute,
    # a burst for a screen that loads several things.
    caller_rate_per_s: float = Field(default=5.0, ge=0)
    caller_burst: int = Field(default=30, ge=1)
    # All the callers of one unit together: a large commune center has tens of counters.
    unit_rate_per_s: float = Field(default=50.0, ge=0)
    unit_burst: int = Field(default=200, ge=1)
    # Requests without a valid token, per source address (the public index, error cases).
    anonymous_rate_per_s: float = Field(default=10.0, ge=0)
    anonymous_burst: int = Field(default=50, ge=1)
    # Failed authentications (401) per source; past them, the source's requests are refused
    # before their credentials are checked, but for credentials it used successfully before.
    auth_failure_rate_per_s: float = Field(default=0.1, ge=0)
    auth_failure_burst: int = Field(default=20, ge=1)

    def enabled(self, environment: Environment) -> bool:
        if self.rate_limits == "auto":
            return environment is Environment.PRODUCTION
        return self.rate_limits == "on"


@dataclass(frozen=True, slots=True)
class Budgets:
    """The budgets one service applies."""

    caller: Budget
    unit: Budget
    anonymous: Budget
    auth_failures: Budget

    @classmethod
    def of(cls, settings: RateLimitSettings) -> Budgets:
        return cls(
            caller=Budget(settings.caller_rate_per_s, settings.caller_burst),
            unit=Budget(settings.unit_rate_per_s, settings.unit_burst),
            anonymous=Budget(settings.anonymous_rate_per_s, settings.anonymous_burst),
            auth_failures=Budget(settings.auth_failure_rate_per_s, settings.auth_failure_burst),
        )
