"""Time that survives a Raspberry Pi: wall time, boot-relative time, and how far to trust each.

A Pi has no real-time clock. After a long power cut it boots with a stale wall
clock (fake-hwclock restores the last shutdown time, or 1970) until NTP steps it
forward, maybe hours later; a clock set ahead by hand is stepped back. So:

* every journal row records, beside its wall time, a :class:`Stamp`: the boot it
  was made in, the seconds since that boot (``CLOCK_BOOTTIME``: it counts across
  suspend and never steps) and whether the kernel said the wall clock was
  synchronised (``adjtimex``: ``STA_UNSYNC`` clear);
* an age or a waiting time is :func:`elapsed`: a LOWER bound that no clock step can
  inflate: boot-relative within one boot, at least this boot's uptime across a
  reboot, and the wall difference only where both wall readings were synchronised.
  Nothing expires, and no money request is re-sent, because a clock jumped;
* a scheduled time further ahead than any delay the terminal ever schedules is
  treated as due (a clock stepped back would otherwise postpone it for days).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import datetime as dt
import functools
import logging
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

#: A wall clock that disagrees with the boot-relative clock by more than this has stepped.
STEP_THRESHOLD = 5.0


@dataclass(frozen=True, slots=True)
class Stamp:
    """One moment, as every clock of the device saw it."""

    wall: dt.datetime
    mono: float  # seconds since boot (CLOCK_BOOTTIME)
    boot: str  # the kernel's boot id
    synced: bool  # the wall clock was NTP-synchronised at the time

    def to_json(self) -> dict[str, Any]:
        return {"wall": self.wall.astimezone(dt.UTC).isoformat(timespec="microseconds"),
                "mono": round(self.mono, 6), "boot": self.boot, "synced": self.synced}

    @classmethod
    def from_json(cls, data: Any) -> Stamp | None:
        if not isinstance(data, dict):
            return None
        try:
            return cls(dt.datetime.fromisoformat(str(data["wall"])), float(data["mono"]),
                       str(data["boot"]), bool(data.get("synced", False)))
        except (KeyError, TypeError, ValueError):
            return None


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def boottime() -> float:
    """Seconds since boot, counting suspend; never steps."""
    try:
        return time.clock_gettime(time.CLOCK_BOOTTIME)
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return time.monotonic()


@functools.cache
def boot_id() -> str:
    """The kernel's id of this boot (a fresh random id per process where there is none)."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:  # pragma: no cover - not Linux
        return f"proc-{uuid.uuid4()}"


class _Timeval(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long)]


class _Timex(ctypes.Structure):
    """``struct timex`` of <sys/timex.h> (Linux), enough of it for ``status``."""

    _fields_ = [
        ("modes", ctypes.c_uint), ("offset", ctypes.c_long), ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long), ("esterror", ctypes.c_long), ("status", ctypes.c_int),
        ("constant", ctypes.c_long), ("precision", ctypes.c_long),
        ("tolerance", ctypes.c_long), ("time", _Timeval), ("tick", ctypes.c_long),
        ("ppsfreq", ctypes.c_long), ("jitter", ctypes.c_long), ("shift", ctypes.c_int),
        ("stabil", ctypes.c_long), ("jitcnt", ctypes.c_long), ("calcnt", ctypes.c_long),
        ("errcnt", ctypes.c_long), ("stbcnt", ctypes.c_long), ("tai", ctypes.c_int),
        ("_pad", ctypes.c_int * 11),
    ]


_STA_UNSYNC = 0x0040
_TIME_ERROR = 5


@functools.cache
def _adjtimex() -> Callable[[Any], int] | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn: Callable[[Any], int] = libc.adjtimex
    except (OSError, AttributeError):  # pragma: no cover - not Linux / glibc
        return None
    return fn


def kernel_synchronised() -> bool:
    """Whether the kernel says the wall clock is synchronised (NTP, chrony, timesyncd).

    ``adjtimex`` with no modes only reads; it answers TIME_ERROR with STA_UNSYNC
    until a time daemon has disciplined the clock. Unknown (no adjtimex): False.
    """
    fn = _adjtimex()
    if fn is None:  # pragma: no cover
        return False
    tx = _Timex()
    try:
        state = fn(ctypes.byref(tx))
    except OSError:  # pragma: no cover
        return False
    return state != _TIME_ERROR and not tx.status & _STA_UNSYNC


class DeviceClock:
    """The clocks of the device, injectable for tests (a fake wall clock, a fake boot)."""

    def __init__(self, wall: Callable[[], dt.datetime] = utcnow,
                 mono: Callable[[], float] = boottime,
                 boot: Callable[[], str] = boot_id,
                 synced: Callable[[], bool] = kernel_synchronised) -> None:
        self.wall = wall
        self.mono = mono
        self.boot = boot
        self.synced = synced

    def now(self) -> dt.datetime:
        return self.wall()

    def stamp(self) -> Stamp:
        return Stamp(self.wall().astimezone(dt.UTC), self.mono(), self.boot(), self.synced())


def elapsed(since: Stamp | None, now: Stamp) -> float:
    """Seconds from ``since`` to ``now``, as a lower bound no clock step can inflate.

    Same boot: the boot-relative difference. Another boot: at least the current
    boot's uptime (the earlier moment came before this boot began). Where both wall
    readings were synchronised, their difference is trusted too (the larger wins).
    ``since`` unknown (a row from before stamps were kept): 0.
    """
    if since is None:
        return 0.0
    bound = now.mono - since.mono if since.boot == now.boot else now.mono
    bound = max(0.0, bound)
    if since.synced and now.synced:
        bound = max(bound, (now.wall - since.wall).total_seconds())
    return bound


def step_between(a: Stamp, b: Stamp) -> float:
    """How far the wall clock stepped between two moments of one boot (0: no step;
    positive: forward; negative: back). Different boots cannot be compared: 0."""
    if a.boot != b.boot:
        return 0.0
    drift = (b.wall - a.wall).total_seconds() - (b.mono - a.mono)
    return drift if abs(drift) > STEP_THRESHOLD else 0.0


def process_start() -> str:
    """This process's identity for leases: boot id, pid and the kernel's start time of
    the pid (so a pid reused after a crash is not taken for the dead holder)."""
    return f"{boot_id()}:{os.getpid()}:{_start_ticks(os.getpid())}"


def _start_ticks(pid: int) -> str:
    """The pid's start time in clock ticks since boot; "Z" for a zombie (dead, not yet
    reaped by its parent); "?" where /proc cannot tell."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return "?"
    # Field 22 (starttime) comes after the command name, which may hold spaces.
    fields = stat[stat.rfind(")") + 2:].split()
    if fields and fields[0] in ("Z", "X"):
        return "Z"
    return fields[19] if len(fields) > 19 else "?"


def owner_alive(owner: str | None) -> bool:
    """Whether the process named by a lease (:func:`process_start`) still runs."""
    if not owner:
        return False
    try:
        boot, pid_s, ticks = owner.rsplit(":", 2)
        pid = int(pid_s)
    except ValueError:
        return False
    if boot != boot_id():
        return False  # the holder died with the previous boot (a power cut)
    if pid == os.getpid():
        return ticks == _start_ticks(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, under another user
    now_ticks = _start_ticks(pid)
    if now_ticks == "Z":
        return False
    return ticks == "?" or now_ticks == ticks
