"""Where the suite keeps its state: `--home DIR`, else `$AIOPS_HOME`, else `~/.aiops`.

Only paths are decided here; nothing in this module opens the database.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Home:
    root: Path

    @property
    def db_path(self) -> Path:
        return self.root / "suite.duckdb"

    @property
    def spool_dir(self) -> Path:
        return self.root / "spool"

    @property
    def quarantine_dir(self) -> Path:
        return self.spool_dir / "quarantine"

    @property
    def certs_dir(self) -> Path:
        return self.root / "certs"

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    @property
    def run_dir(self) -> Path:
        """Small status files written by running processes (gateway counters)."""
        return self.root / "run"

    @property
    def gateway_config(self) -> Path:
        return self.root / "gateway.toml"

    def ensure(self) -> Home:
        for d in (self.root, self.spool_dir, self.certs_dir, self.logs_dir, self.run_dir):
            d.mkdir(parents=True, exist_ok=True)
        return self


def resolve_home(home: str | os.PathLike[str] | None = None) -> Home:
    """The home directory by precedence: explicit argument, `$AIOPS_HOME`, `~/.aiops`."""
    if home:
        return Home(Path(home).expanduser().resolve())
    env = os.environ.get("AIOPS_HOME")
    if env:
        return Home(Path(env).expanduser().resolve())
    return Home((Path.home() / ".aiops").resolve())
