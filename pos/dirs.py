"""Where the log and the caches live (the journal, config and device key stay in the
data directory, :func:`pos.config.data_home`).

Precedence, highest first: the setting (``logs.dir``, ``cache_dir``); then
``$SENTE_POS_HOME`` (the kiosk sets it: everything of the terminal in one directory,
the one its systemd unit may write); then the platform's user directories, on Linux
the XDG ones: ``$XDG_STATE_HOME/sente-pos/log`` (``~/.local/state/sente-pos/log``) and
``$XDG_CACHE_HOME/sente-pos`` (``~/.cache/sente-pos``).
"""

from __future__ import annotations

import os
from pathlib import Path

from pos.config import APP_NAME, Settings

LOG_NAME = "sente-pos.log"


def log_dir(settings: Settings | None = None) -> Path:
    """The directory of ``sente-pos.log``."""
    if settings is not None and settings.logs.dir is not None:
        return settings.logs.dir.expanduser()
    home = os.environ.get("SENTE_POS_HOME")
    if home:
        return Path(home).expanduser()
    import platformdirs  # only off the kiosk (which sets $SENTE_POS_HOME)

    return Path(platformdirs.user_log_dir(APP_NAME, appauthor=False))


def log_file(settings: Settings | None = None) -> Path:
    return log_dir(settings) / LOG_NAME


def cache_dir(settings: Settings | None = None) -> Path:
    """Files that can be rebuilt at any time (python-escpos' parsed printer database)."""
    if settings is not None and settings.cache_dir is not None:
        return settings.cache_dir.expanduser()
    home = os.environ.get("SENTE_POS_HOME")
    if home:
        return Path(home).expanduser() / "cache"
    import platformdirs

    return Path(platformdirs.user_cache_dir(APP_NAME, appauthor=False))
