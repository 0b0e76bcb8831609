"""Logging set-up shared by the stage commands: to the rule's log file and to stderr."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

LOGGER_NAME = "omnimatte"


def get_logger(name: str | None = None) -> logging.Logger:
    """The package logger, or a child of it (e.g. get_logger('flow'))."""
    return logging.getLogger(LOGGER_NAME if name is None else f"{LOGGER_NAME}.{name}")


def setup_logging(log_file: str | None = None, verbose: bool = False) -> logging.Logger:
    """Send package log records to stderr and, when given, to `log_file` (appended)."""
    logger = get_logger()
    logger.handlers.clear()
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    logger.propagate = False
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S")
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file, mode="a"))
    for handler in handlers:
        handler.setFormatter(fmt)
        logger.addHandler(handler)
    return logger
