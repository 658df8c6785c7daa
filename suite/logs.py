"""Logging for the suite's long-running commands: stderr and `<home>/logs/<name>.log`.

One format everywhere; never logs secrets (callers pass no headers or bodies).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable

from suite.home import Home

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(home: Home, name: str, quiet: Iterable[str] = ()) -> None:
    """INFO to stderr and to the home's log file; `quiet` loggers only from WARNING."""
    fmt = logging.Formatter(FORMAT)
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    stream = logging.StreamHandler(sys.stderr)
    stream.setFormatter(fmt)
    root.addHandler(stream)
    try:
        home.logs_dir.mkdir(parents=True, exist_ok=True)
        fileh = logging.FileHandler(home.logs_dir / f"{name}.log")
        fileh.setFormatter(fmt)
        root.addHandler(fileh)
    except OSError as e:
        logging.getLogger("aiops").warning("cannot write %s/%s.log: %s", home.logs_dir, name, e)
    for logger in quiet:
        logging.getLogger(logger).setLevel(logging.WARNING)
