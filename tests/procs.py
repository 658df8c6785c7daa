"""Start the suite's real processes (emulator, gateway, worker) on loopback ports for tests.

Each process is stopped (SIGINT, then SIGKILL) when the test ends, and its output is kept
for the failure message.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
AIOPS = str(BIN / "aiops")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Proc:
    """A child process whose output lines are collected by a reader thread."""

    def __init__(self, argv: list[str], env: dict[str, str] | None = None, cwd: Path | None = None):
        self.argv = argv
        self.lines: list[str] = []
        self.popen = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, **(env or {})},
            cwd=cwd,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, pattern: str, timeout: float = 30.0) -> re.Match[str]:
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                m = rx.search(line)
                if m:
                    return m
            if self.popen.poll() is not None:
                time.sleep(0.1)
                raise AssertionError(
                    f"{self.argv[:3]} exited with {self.popen.returncode} before printing "
                    f"{pattern!r}:\n{self.output}"
                )
            time.sleep(0.02)
        raise AssertionError(
            f"timed out waiting for {pattern!r} from {self.argv[:3]}:\n{self.output}"
        )

    def stop(self, sig: int = signal.SIGINT, timeout: float = 20.0) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        self._reader.join(5)
        if self.popen.stdout is not None:
            self.popen.stdout.close()
        return self.popen.returncode


def start_emulator(port: int | None = None) -> tuple[Proc, str]:
    p = Proc([sys.executable, "-m", "suite.emulators.rest_upstream", "--port", str(port or 0)])
    return p, _started(p, r"emulator listening on (http://\S+)")


def _started(p: Proc, banner: str) -> str:
    try:
        return p.wait_for(banner).group(1)
    except AssertionError:
        p.stop()
        raise


def start_gateway(
    home: Path, config: Path, *extra: str, port: int | None = None
) -> tuple[Proc, str]:
    p = Proc(
        [AIOPS, "gateway", "--home", str(home), "--config", str(config),
         "--listen-port", str(port if port is not None else 0), *extra]
    )  # fmt: skip
    return p, _started(p, r"aiops gateway listening on (http://\S+)")


def run_aiops(
    *args: str, timeout: float = 120.0, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [AIOPS, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )
