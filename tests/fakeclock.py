"""A device clock for tests: wall time, boot-relative time, boot id and NTP state, each set
by the test (a Pi's clock stepping after a cold boot, a reboot, an unsynchronised clock)."""

from __future__ import annotations

import datetime as dt

from pos.clock import DeviceClock


class FakeDevice(DeviceClock):
    def __init__(self, wall: dt.datetime, *, mono: float = 1000.0, boot: str = "boot-1",
                 synced: bool = True) -> None:
        self._wall = wall
        self._mono = mono
        self._boot = boot
        self._synced = synced
        super().__init__(wall=lambda: self._wall, mono=lambda: self._mono,
                         boot=lambda: self._boot, synced=lambda: self._synced)

    def advance(self, seconds: float) -> None:
        """Time passes: both clocks move together."""
        self._wall += dt.timedelta(seconds=seconds)
        self._mono += seconds

    def step(self, seconds: float) -> None:
        """The wall clock alone jumps (NTP correcting a stale clock, a hand setting)."""
        self._wall += dt.timedelta(seconds=seconds)

    def reboot(self, *, off_for: float, synced: bool = False,
               wall: dt.datetime | None = None) -> None:
        """A power cut: a new boot, the boot clock restarts; a Pi without RTC comes back
        with ``wall`` (a stale time) unless given none (then real time passed)."""
        self._boot = self._boot + "'"
        self._mono = 5.0
        self._synced = synced
        self._wall = wall if wall is not None else self._wall + dt.timedelta(seconds=off_for)

    def set_synced(self, synced: bool) -> None:
        self._synced = synced
