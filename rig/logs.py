"""One named logger for the whole program, written to a rotating file under the log dir."""

from __future__ import annotations

import logging
import logging.handlers

from rig.paths import log_dir

LOGGER = "stackrig"


def setup_logging(level: int = logging.INFO) -> logging.Logger:
    """Log ``stackrig.*`` to ``<log dir>/stackrig.log`` (5 x 2 MB). Never fails the program."""
    logger = logging.getLogger(LOGGER)
    logger.setLevel(level)
    target = log_dir() / "stackrig.log"
    for old in [h for h in logger.handlers if isinstance(h, logging.handlers.RotatingFileHandler)]:
        if old.baseFilename == str(target.absolute()):
            return logger
        logger.removeHandler(old)  # the log dir moved (STACKRIG_HOME changed)
        old.close()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.handlers.RotatingFileHandler(
            target, maxBytes=2_000_000, backupCount=5, encoding="utf-8"
        )
    except OSError:
        return logger  # a read-only home must not stop a shoot; stderr still gets errors
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger.addHandler(handler)
    return logger
