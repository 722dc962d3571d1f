"""One log file for the whole program, rotating, under the platform log dir.

Everything under the ``stackrig`` logger goes there, and libgphoto2's warnings too (python-gphoto2
routes them to the ``gphoto2`` logger; its debug chatter stays out).
"""

from __future__ import annotations

import logging
import logging.handlers

from rig.paths import log_dir

LOGGER = "stackrig"
_LEVELS = {LOGGER: logging.INFO, "gphoto2": logging.WARNING}


def setup_logging() -> logging.Logger:
    """Log to ``<log dir>/stackrig.log`` (5 x 2 MB). Never fails the program."""
    target = log_dir() / "stackrig.log"
    loggers = [logging.getLogger(name) for name in _LEVELS]
    if any(_file_of(h) == str(target.absolute()) for h in loggers[0].handlers):
        return loggers[0]
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.handlers.RotatingFileHandler(
            target,
            maxBytes=2_000_000,
            backupCount=5,
            encoding="utf-8",
            errors="backslashreplace",  # file names that are not UTF-8 are logged escaped
        )
    except OSError:
        return loggers[0]  # a read-only home must not stop a shoot; errors still reach stderr
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    for logger in loggers:
        for old in [h for h in logger.handlers if _file_of(h)]:
            logger.removeHandler(old)  # the log dir moved (STACKRIG_HOME changed)
            old.close()
        logger.setLevel(_LEVELS[logger.name])
        logger.addHandler(handler)
    return loggers[0]


def _file_of(handler: logging.Handler) -> str | None:
    if isinstance(handler, logging.handlers.RotatingFileHandler):
        return handler.baseFilename
    return None
