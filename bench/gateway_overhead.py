"""Gateway overhead: the same client load against the upstream, bare mitmdump and the gateway.

Three configurations, alternated over several rounds (a, b, c, a, b, c, ...):

  a  direct    the upstream emulator (suite.emulators.rest_upstream), no proxy
  b  mitmdump  bare `mitmdump --mode reverse:<emulator> -q`
  c  gateway   `aiops gateway` (router + capture to the spool), one home for all rounds
  d  gateway, one process per core: `aiops gateway --processes <cores>` (SO_REUSEPORT on
     one port, every process recording to the same spool, in the same home)

The load client runs in its own process: C keep-alive HTTP/1.1 connections (raw asyncio
streams, minimal parser) send GETs as fast as they can for N seconds, after a short
warm-up that is not measured. Reported per configuration: medians over the rounds of
requests/s, p50 and p99 latency (ms). For (c) every request the client sent (warm-up
included, failed ones too) is compared with the rows that reach DuckDB after the gateway
is stopped with SIGINT (it flushes) and `aiops worker --once` loads the spool.

Each round starts a fresh proxy process and stops it afterwards; the emulator runs for
the whole benchmark. Run-to-run variation on a 2-core machine is large (about +-40%),
hence the alternation and the medians.

Usage: .venv/bin/python bench/gateway_overhead.py [--seconds 10] [--rounds 3]
       [--concurrency 16] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve()
BIN = Path(sys.executable).parent
AIOPS = str(BIN / "aiops")
MITMDUMP = str(BIN / "mitmdump")
DEFAULT_PATH = "/bench/policies/POL-000123"
POOL_PROCESSES = os.cpu_count() or 2
CONFIGS = ("direct", "mitmdump", "gateway", "gateway_pool")
GATEWAYS = ("gateway", "gateway_pool")
LABELS = {
    "direct": "(a) upstream direct",
    "mitmdump": "(b) bare mitmdump reverse",
    "gateway": "(c) aiops gateway + capture",
    "gateway_pool": f"(d) aiops gateway x{POOL_PROCESSES} processes",
}
TARGET_RATIO = 1.8
TARGET_POOL_RATIO = 3.0


# =========================================================================================
# Load client (runs in a separate process: `gateway_overhead.py --client HOST PORT ...`).
# Kept free of heavy imports so that it costs as little CPU as possible.
# =========================================================================================


class _Stats:
    __slots__ = (
        "sent",
        "ok",
        "bad_status",
        "failed",
        "connects",
        "connect_errors",
        "lat",
        "done_in_window",
    )

    def __init__(self) -> None:
        self.sent = 0  # requests written to a socket (warm-up included)
        self.ok = 0  # 2xx responses fully read (warm-up included)
        self.bad_status = 0  # non-2xx responses fully read
        self.failed = 0  # requests sent that got no complete response
        self.connects = 0
        self.connect_errors = 0
        self.lat: list[float] = []  # seconds, responses completed inside the window
        self.done_in_window = 0


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Read one response; (status, server wants to close)."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    low = head.lower()
    i = low.find(b"\r\ncontent-length:")
    if i >= 0:
        j = low.find(b"\r\n", i + 2)
        n = int(low[i + 17 : j])
        if n:
            await reader.readexactly(n)
    elif b"\r\ntransfer-encoding: chunked" in low:
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";", 1)[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif status not in (204, 304):
        # Body until close: read it and drop the connection.
        await reader.read()
        return status, True
    return status, b"\r\nconnection: close" in low


async def _conn_worker(
    host: str, port: int, request: bytes, warm_end: float, deadline: float, st: _Stats
) -> None:
    clock = time.perf_counter
    lat = st.lat
    while clock() < deadline:
        try:
            reader, writer = await asyncio.open_connection(host, port, limit=1 << 20)
        except OSError:
            st.connect_errors += 1
            await asyncio.sleep(0.01)
            continue
        st.connects += 1
        inflight = False
        try:
            while True:
                t0 = clock()
                if t0 >= deadline:
                    break
                writer.write(request)
                st.sent += 1
                inflight = True
                status, close = await _read_response(reader)
                inflight = False
                t1 = clock()
                if 200 <= status < 300:
                    st.ok += 1
                else:
                    st.bad_status += 1
                if warm_end <= t1 <= deadline:
                    lat.append(t1 - t0)
                if close:
                    break
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            pass
        finally:
            if inflight:
                st.failed += 1
                inflight = False
            writer.close()


async def _run_client(
    host: str, port: int, path: str, seconds: float, warmup: float, concurrency: int
) -> dict[str, object]:
    request = (
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        "User-Agent: aiops-bench/1\r\nAccept: */*\r\n\r\n"
    ).encode()
    st = _Stats()
    start = time.perf_counter()
    warm_end = start + warmup
    deadline = warm_end + seconds
    tasks = [
        asyncio.create_task(_conn_worker(host, port, request, warm_end, deadline, st))
        for _ in range(concurrency)
    ]
    # A request still unanswered 15 s after the deadline counts as failed.
    _done, pending = await asyncio.wait(tasks, timeout=deadline - time.perf_counter() + 15)
    for t in pending:
        t.cancel()
    if pending:
        await asyncio.gather(*pending, return_exceptions=True)
    lat = sorted(st.lat)
    n = len(lat)

    def pct(q: float) -> float | None:
        return lat[min(n - 1, int(q * n))] * 1000 if n else None

    return {
        "sent": st.sent,
        "ok": st.ok,
        "bad_status": st.bad_status,
        "failed": st.failed,
        "connects": st.connects,
        "connect_errors": st.connect_errors,
        "measured": n,
        "seconds": seconds,
        "rps": n / seconds,
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "max_ms": lat[-1] * 1000 if n else None,
        "hung": len(pending),
        "client_cpu_s": _own_cpu_seconds(),
    }


def _own_cpu_seconds() -> float:
    import resource

    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def client_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="gateway_overhead.py --client")
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("--path", default=DEFAULT_PATH)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--concurrency", type=int, default=16)
    a = p.parse_args(argv)
    result = asyncio.run(_run_client(a.host, a.port, a.path, a.seconds, a.warmup, a.concurrency))
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


# =========================================================================================
# Orchestration
# =========================================================================================


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def proc_cpu_seconds(pid: int | None) -> float | None:
    """utime + stime of a process (all its threads) and of its children (the processes
    of `aiops gateway --processes N`), from /proc."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    total = (int(fields[11]) + int(fields[12])) / CLK_TCK
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        children = []
    return total + sum(proc_cpu_seconds(int(c)) or 0.0 for c in children)


def machine_busy_seconds() -> float | None:
    """CPU seconds spent busy by the whole machine so far (all cores), from /proc/stat."""
    try:
        with open("/proc/stat") as fh:
            v = [int(x) for x in fh.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = v[3] + (v[4] if len(v) > 4 else 0)  # idle + iowait
    busy = sum(v[:8]) - idle  # guest time is already counted in user
    return busy / CLK_TCK


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port: int, proc: Proc, timeout: float = 60.0) -> None:
    """Wait until a TCP connect succeeds (no request is sent: nothing gets recorded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.popen.poll() is not None:
            raise RuntimeError(f"{proc.name} exited with {proc.popen.returncode}:\n{proc.output}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{proc.name} not listening on {port} after {timeout} s:\n{proc.output}")


class Proc:
    """A child process whose combined output is collected by a reader thread."""

    def __init__(self, name: str, argv: list[str], cwd: Path | None = None) -> None:
        self.name = name
        self.argv = argv
        self.lines: list[str] = []
        self.popen = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
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
        return "\n".join(self.lines[-60:])

    def wait_for(self, pattern: str, timeout: float = 60.0, skip: int = 0) -> re.Match[str]:
        """The first line matching `pattern` after `skip` earlier matching lines."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            matches = [m for m in map(rx.search, list(self.lines)) if m]
            if len(matches) > skip:
                return matches[skip]
            if self.popen.poll() is not None:
                time.sleep(0.1)
                raise RuntimeError(
                    f"{self.name} exited with {self.popen.returncode} before printing "
                    f"{pattern!r}:\n{self.output}"
                )
            time.sleep(0.02)
        raise RuntimeError(f"timed out waiting for {pattern!r} from {self.name}:\n{self.output}")

    def stop(self, timeout: float = 60.0) -> tuple[int | None, float]:
        """SIGINT, wait (then SIGKILL); (exit code, seconds it took to exit)."""
        t0 = time.monotonic()
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGINT)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                log(f"  {self.name} did not exit {timeout:.0f} s after SIGINT: SIGKILL")
                self.popen.kill()
                self.popen.wait(10)
        self._reader.join(5)
        return self.popen.returncode, time.monotonic() - t0


def run_client(
    port: int, args: argparse.Namespace, server_pid: int | None, emu_pid: int
) -> dict[str, object]:
    """Run the load client; adds CPU accounting for the server, emulator and the machine."""
    argv = [
        sys.executable, str(HERE), "--client", "127.0.0.1", str(port),
        "--path", args.path, "--seconds", str(args.seconds),
        "--warmup", str(args.warmup), "--concurrency", str(args.concurrency),
    ]  # fmt: skip
    srv0, emu0, busy0 = (
        proc_cpu_seconds(server_pid),
        proc_cpu_seconds(emu_pid),
        machine_busy_seconds(),
    )
    t0 = time.monotonic()
    out = subprocess.run(
        argv, capture_output=True, text=True, timeout=args.seconds + args.warmup + 60
    )
    wall = time.monotonic() - t0
    srv1, emu1, busy1 = (
        proc_cpu_seconds(server_pid),
        proc_cpu_seconds(emu_pid),
        machine_busy_seconds(),
    )
    if out.returncode != 0:
        raise RuntimeError(f"load client failed ({out.returncode}):\n{out.stderr}")
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res["wall_s"] = round(wall, 3)
    srv = None if srv0 is None or srv1 is None else srv1 - srv0
    emu = None if emu0 is None or emu1 is None else emu1 - emu0
    res["proxy_cpu_s"] = srv if server_pid is not None and server_pid != emu_pid else None
    res["emulator_cpu_s"] = emu
    # CPU per request over the whole client run (warm-up included, like `sent`).
    n = max(int(res["sent"]), 1)
    res["proxy_cpu_us_per_req"] = (
        None if res["proxy_cpu_s"] is None else res["proxy_cpu_s"] / n * 1e6
    )
    # Busy CPU on the machine not used by the client, the emulator or the proxy: other
    # people's work. More than a few percent makes this round less trustworthy.
    if busy0 is not None and busy1 is not None:
        ours = (res.get("client_cpu_s") or 0.0) + (emu or 0.0) + (res["proxy_cpu_s"] or 0.0)
        foreign = max(0.0, (busy1 - busy0) - ours)
        res["foreign_cpu_pct"] = 100.0 * foreign / (wall * (os.cpu_count() or 1))
    else:
        res["foreign_cpu_pct"] = None
    return res


def write_gateway_config(path: Path, upstream: str) -> None:
    path.write_text(
        "# written by bench/gateway_overhead.py\n"
        "[[routes]]\n"
        'name = "bench"\n'
        'prefix = "/bench"\n'
        f'upstreams = ["{upstream}"]\n'
    )


def read_gateway_status(run_dir: Path) -> dict[str, dict[str, object]]:
    out: dict[str, dict[str, object]] = {}
    for f in sorted(run_dir.glob("gateway-*.json")):
        try:
            data = json.loads(f.read_text())
        except (OSError, ValueError):
            continue
        out[str(data.get("gateway_id", f.stem))] = data
    return out


def aiops_query(home: Path, sql: str) -> list[dict[str, object]]:
    out = subprocess.run(
        [AIOPS, "query", "--home", str(home), sql, "--format", "json"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    if out.returncode != 0:
        raise RuntimeError(f"aiops query failed ({out.returncode}):\n{out.stderr}")
    return json.loads(out.stdout)


def run_round(
    cfg: str, rnd: int, args: argparse.Namespace, emu_port: int, emu_pid: int, work: Path
) -> dict[str, object]:
    proc: Proc | None = None
    extra: dict[str, object] = {}
    if cfg == "direct":
        port = emu_port
    elif cfg == "mitmdump":
        port = free_port()
        confdir = work / "mitmproxy-conf"
        confdir.mkdir(exist_ok=True)
        proc = Proc(
            "mitmdump",
            [MITMDUMP, "--mode", f"reverse:http://127.0.0.1:{emu_port}",
             "--listen-host", "127.0.0.1", "-p", str(port), "-q",
             "--set", f"confdir={confdir}"],
        )  # fmt: skip
        wait_listening(port, proc)
    else:
        home = work / "gateway-home"
        status_before = set(read_gateway_status(home / "run"))
        processes = POOL_PROCESSES if cfg == "gateway_pool" else 1
        proc = Proc(
            "aiops gateway",
            [AIOPS, "gateway", "--home", str(home), "--config", str(work / "gateway.toml"),
             "--listen-port", str(free_port()), "--processes", str(processes)],
        )  # fmt: skip
        for _ in range(processes):  # one banner per process
            m = proc.wait_for(r"aiops gateway listening on http://[^:\s]+:(\d+)", skip=_)
        port = int(m.group(1))
        wait_listening(port, proc)
    time.sleep(0.3)  # let start-up work (imports, cert generation) settle
    try:
        res = run_client(port, args, proc.popen.pid if proc else None, emu_pid)
    finally:
        if proc is not None:
            code, took = proc.stop()
            extra["exit_code"] = code
            extra["stop_seconds"] = round(took, 2)
            if code not in (0, -signal.SIGINT, 130):
                log(f"  {proc.name} exited with {code}:\n{proc.output}")
    if cfg in GATEWAYS:
        status = read_gateway_status(work / "gateway-home" / "run")
        extra["gateway_ids"] = [g for g in status if g not in status_before]
    res.update(extra)
    res["config"] = cfg
    res["round"] = rnd
    return res


def count_rows(home: Path, gw_rounds: list[dict[str, object]]) -> dict[str, object]:
    """Load the gateway's spool with `aiops worker --once` and compare with what was sent."""
    sent = sum(int(r["sent"]) for r in gw_rounds)
    status = read_gateway_status(home / "run")
    loss: dict[str, object] = {
        "sent": sent,
        "recorded": None,
        "lost": None,
        "duplicate_ids": None,
        "gateway_received": sum(int(s.get("received", 0)) for s in status.values()),
        "gateway_written": sum(int(s.get("written", 0)) for s in status.values()),
        "gateway_dropped": sum(int(s.get("dropped", 0)) for s in status.values()),
        "spool_segments_left": None,
        "worker_output": None,
        "error": None,
    }
    by_gw: dict[str, int] = {}
    try:
        worker = subprocess.run(
            [AIOPS, "worker", "--once", "--home", str(home)],
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        loss["worker_output"] = worker.stdout.strip()
        if worker.returncode != 0:
            raise RuntimeError(
                f"aiops worker --once exited with {worker.returncode}: "
                f"{worker.stdout.strip()} {worker.stderr.strip()[-2000:]}"
            )
        recorded = int(aiops_query(home, "select count(*) n from requests")[0]["n"])
        loss["recorded"] = recorded
        loss["lost"] = sent - recorded
        loss["duplicate_ids"] = int(
            aiops_query(home, "select count(*) - count(distinct id) d from requests")[0]["d"]
        )
        by_gw = {
            str(r["gateway_id"]): int(r["n"])
            for r in aiops_query(home, "select gateway_id, count(*) n from requests group by 1")
        }
        loss["spool_segments_left"] = len(list((home / "spool").glob("*.parquet")))
    except (RuntimeError, subprocess.TimeoutExpired, ValueError, KeyError, IndexError) as e:
        loss["error"] = str(e)
        log(f"counting rows failed: {e}")
    per_gateway = []
    for r in gw_rounds:
        for gid in r.get("gateway_ids") or [None]:
            st = status.get(str(gid), {}) if gid else {}
            per_gateway.append({
                "round": f"{r['round']} {r['config']}", "gateway_id": gid, "sent": r["sent"],
                "received": st.get("received"), "written": st.get("written"),
                "dropped": st.get("dropped"), "rows_in_db": by_gw.get(str(gid)),
                "stop_seconds": r.get("stop_seconds"), "exit_code": r.get("exit_code"),
            })  # fmt: skip
    loss["per_gateway"] = per_gateway
    return loss


def _suite_source() -> str | None:
    import importlib.util

    spec = importlib.util.find_spec("suite")
    return str(Path(spec.origin).parent) if spec and spec.origin else None


def _version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def median(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


def summarize(rounds: list[dict[str, object]], loss: dict[str, object], args) -> dict[str, object]:
    per: dict[str, dict[str, object]] = {}
    for cfg in CONFIGS:
        rs = [r for r in rounds if r["config"] == cfg]
        per[cfg] = {
            "rps": median([r["rps"] for r in rs]),
            "p50_ms": median([r["p50_ms"] for r in rs]),
            "p99_ms": median([r["p99_ms"] for r in rs]),
            "rps_rounds": [round(r["rps"], 1) for r in rs],
            "p99_rounds": [None if r["p99_ms"] is None else round(r["p99_ms"], 2) for r in rs],
            "proxy_cpu_us_per_req": median([r.get("proxy_cpu_us_per_req") for r in rs]),
            "foreign_cpu_pct_max": max(
                (r["foreign_cpu_pct"] for r in rs if r.get("foreign_cpu_pct") is not None),
                default=None,
            ),
            "sent": sum(r["sent"] for r in rs),
            "failed": sum(r["failed"] for r in rs),
            "bad_status": sum(r["bad_status"] for r in rs),
        }
    b, c, d = per["mitmdump"], per["gateway"], per["gateway_pool"]
    ratio = c["rps"] / b["rps"] if b["rps"] and c["rps"] is not None else None
    pool_ratio = d["rps"] / b["rps"] if b["rps"] and d["rps"] is not None else None
    p99_better = (
        c["p99_ms"] < b["p99_ms"] if c["p99_ms"] is not None and b["p99_ms"] is not None else None
    )
    b_cpu, c_cpu = b["proxy_cpu_us_per_req"], c["proxy_cpu_us_per_req"]
    return {
        "gateway_vs_mitmdump_cpu_per_request": c_cpu / b_cpu if b_cpu and c_cpu else None,
        "settings": {
            "seconds": args.seconds,
            "rounds": args.rounds,
            "concurrency": args.concurrency,
            "warmup": args.warmup,
            "path": args.path,
            "cpus": os.cpu_count(),
            "suite_source": _suite_source(),
            "mitmproxy": _version("mitmproxy"),
            "python": sys.version.split()[0],
        },
        "results": per,
        "gateway_vs_mitmdump_throughput": ratio,
        "gateway_pool_vs_mitmdump_throughput": pool_ratio,
        "gateway_p99_below_mitmdump": p99_better,
        "rows": loss,
        "targets": {
            "throughput_ratio_ge_1_8": None if ratio is None else ratio >= TARGET_RATIO,
            "pool_throughput_ratio_ge_3": None
            if pool_ratio is None
            else pool_ratio >= TARGET_POOL_RATIO,
            "gateway_p99_below_mitmdump": p99_better,
            "zero_rows_lost": None if loss.get("lost") is None else loss["lost"] == 0,
        },
        "rounds": rounds,
    }


def fmt(v: float | None, spec: str = ".1f") -> str:
    return "-" if v is None else format(v, spec)


def print_report(s: dict[str, object]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 120)
    st = s["settings"]
    per = s["results"]
    console.print(
        f"suite from {st['suite_source']}; mitmproxy {st['mitmproxy']}, Python {st['python']}, "
        f"{st['cpus']} CPUs"
    )

    t = Table(title="Per round (measured window only)", title_justify="left")
    for col in ("round", "config", "req/s", "p50 ms", "p99 ms", "max ms", "sent", "failed",
                "non-2xx", "proxy CPU us/req", "foreign CPU %"):  # fmt: skip
        t.add_column(col, justify="left" if col == "config" else "right")
    for r in s["rounds"]:
        t.add_row(
            str(r["round"]), r["config"], fmt(r["rps"], ",.0f"), fmt(r["p50_ms"], ".2f"),
            fmt(r["p99_ms"], ".2f"), fmt(r["max_ms"], ".1f"), f"{r['sent']:,}",
            str(r["failed"]), str(r["bad_status"]), fmt(r.get("proxy_cpu_us_per_req"), ".0f"),
            fmt(r.get("foreign_cpu_pct"), ".0f"),
        )  # fmt: skip
    console.print(t)

    t = Table(
        title=(
            f"Median over {st['rounds']} rounds: {st['seconds']:g} s each, "
            f"{st['concurrency']} keep-alive connections, GET {st['path']}"
        ),
        title_justify="left",
    )
    t.add_column("configuration")
    t.add_column("req/s", justify="right")
    t.add_column("p50 ms", justify="right")
    t.add_column("p99 ms", justify="right")
    t.add_column("req/s per round", justify="right")
    t.add_column("vs (b)", justify="right")
    t.add_column("proxy CPU us/req", justify="right")
    b_rps = per["mitmdump"]["rps"]
    for cfg in CONFIGS:
        p = per[cfg]
        rel = f"{p['rps'] / b_rps:.2f}x" if b_rps and p["rps"] is not None else "-"
        t.add_row(
            LABELS[cfg], fmt(p["rps"], ",.0f"), fmt(p["p50_ms"], ".2f"), fmt(p["p99_ms"], ".2f"),
            " / ".join(f"{x:,.0f}" for x in p["rps_rounds"]), rel,
            fmt(p["proxy_cpu_us_per_req"], ".0f"),
        )  # fmt: skip
    console.print(t)

    rows = s["rows"]
    t = Table(title="Rows lost by the gateway (all rounds of (c) and (d))", title_justify="left")
    for col in (
        "sent by client",
        "recorded in requests",
        "lost",
        "gateway received",
        "written",
        "dropped",
    ):
        t.add_column(col, justify="right")
    t.add_row(
        f"{rows['sent']:,}", fmt(rows["recorded"], ",.0f"), fmt(rows["lost"], ",.0f"),
        f"{rows['gateway_received']:,}", f"{rows['gateway_written']:,}",
        f"{rows['gateway_dropped']:,}",
    )  # fmt: skip
    console.print(t)
    if rows.get("error"):
        console.print(f"[red]could not count rows:[/] {rows['error']}", markup=True)
    if rows.get("duplicate_ids"):
        console.print(f"[red]{rows['duplicate_ids']} duplicate ids in requests[/]")

    t = Table(title="Gateway processes (status files in <home>/run)", title_justify="left")
    for col in (
        "round",
        "gateway id",
        "client sent",
        "received",
        "written",
        "dropped",
        "rows in DB",
        "stop s",
        "exit",
    ):
        t.add_column(col, justify="right")
    for g in rows["per_gateway"]:
        t.add_row(
            str(g.get("round", "-")), str(g["gateway_id"]), fmt(g.get("sent"), ",.0f"),
            fmt(g.get("received"), ",.0f"), fmt(g.get("written"), ",.0f"),
            fmt(g.get("dropped"), ",.0f"), fmt(g.get("rows_in_db"), ",.0f"),
            fmt(g.get("stop_seconds"), ".2f"), str(g.get("exit_code", "-")),
        )  # fmt: skip
    console.print(t)
    if rows.get("worker_output"):
        console.print(f"worker --once: {rows['worker_output']}")

    ratio = s["gateway_vs_mitmdump_throughput"]
    tg = s["targets"]

    def mark(ok: bool | None) -> str:
        return "[green]met[/]" if ok else ("[red]NOT met[/]" if ok is not None else "-")

    t = Table(title="Targets (informational, not asserted)", title_justify="left")
    t.add_column("target")
    t.add_column("measured", justify="right")
    t.add_column("result")
    t.add_row(
        "(c) throughput >= 1.8x (b)", f"{fmt(ratio, '.2f')}x", mark(tg["throughput_ratio_ge_1_8"])
    )
    t.add_row(
        f"(d) x{POOL_PROCESSES} processes throughput >= 3x (b)",
        f"{fmt(s['gateway_pool_vs_mitmdump_throughput'], '.2f')}x",
        mark(tg["pool_throughput_ratio_ge_3"]),
    )
    t.add_row(
        "(c) p99 < (b) p99",
        f"{fmt(per['gateway']['p99_ms'], '.2f')} ms vs {fmt(per['mitmdump']['p99_ms'], '.2f')} ms",
        mark(tg["gateway_p99_below_mitmdump"]),
    )
    t.add_row(
        "0 rows lost", f"{rows['lost']:,} lost of {rows['sent']:,}", mark(tg["zero_rows_lost"])
    )
    console.print(t)
    cpu = s["gateway_vs_mitmdump_cpu_per_request"]
    console.print(
        f"Proxy CPU per request (robust to machine noise): (c) "
        f"{fmt(per['gateway']['proxy_cpu_us_per_req'], '.0f')} us vs (b) "
        f"{fmt(per['mitmdump']['proxy_cpu_us_per_req'], '.0f')} us = {fmt(cpu, '.2f')}x "
        f"(throughput-equivalent {fmt(1 / cpu if cpu else None, '.2f')}x)"
    )
    noisy = [r for r in s["rounds"] if (r.get("foreign_cpu_pct") or 0) > 10]
    if noisy:
        console.print(
            f"[yellow]warning:[/] {len(noisy)} of {len(s['rounds'])} runs had more than 10% of the "
            "machine's CPU used by other processes; their numbers are less trustworthy."
        )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--client"]:
        return client_main(argv[1:])
    p = argparse.ArgumentParser(
        description=__doc__.rsplit("\nUsage:", 1)[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Targets printed (not asserted): (c) >= 1.8x (b) throughput, (c) p99 < (b) p99, "
        "(d) >= 3x (b), 0 rows lost.",
    )
    p.add_argument(
        "--seconds", type=float, default=10.0, help="measured seconds per run (default 10)"
    )
    p.add_argument("--rounds", type=int, default=3, help="rounds of a,b,c (default 3)")
    p.add_argument(
        "--concurrency", type=int, default=16, help="keep-alive connections (default 16)"
    )
    p.add_argument(
        "--warmup", type=float, default=1.0, help="unmeasured seconds before each run (default 1)"
    )
    p.add_argument("--path", default=DEFAULT_PATH, help=f"request path (default {DEFAULT_PATH})")
    p.add_argument("--json", action="store_true", help="print the results as one JSON object")
    p.add_argument(
        "--keep", action="store_true", help="keep the temporary directory (gateway home)"
    )
    args = p.parse_args(argv)
    if not args.path.startswith("/bench"):
        p.error("--path must start with /bench (the gateway's only route)")

    work = Path(tempfile.mkdtemp(prefix="aiops-bench-gw-"))
    emu = Proc("emulator", [sys.executable, "-m", "suite.emulators.rest_upstream", "--port", "0"])
    try:
        m = emu.wait_for(r"emulator listening on http://[^:\s]+:(\d+)")
        emu_port = int(m.group(1))
        write_gateway_config(work / "gateway.toml", f"http://127.0.0.1:{emu_port}")
        home = work / "gateway-home"
        log(f"work dir {work}; emulator on port {emu_port}")
        rounds: list[dict[str, object]] = []
        for rnd in range(1, args.rounds + 1):
            for cfg in CONFIGS:
                r = run_round(cfg, rnd, args, emu_port, emu.popen.pid, work)
                rounds.append(r)
                log(
                    f"  round {rnd} {cfg:9s} {r['rps']:9,.0f} req/s  p50 {fmt(r['p50_ms'], '.2f')} ms"
                    f"  p99 {fmt(r['p99_ms'], '.2f')} ms  sent {r['sent']:,}  failed {r['failed']}"
                    f"  proxy CPU {fmt(r['proxy_cpu_us_per_req'], '.0f')} us/req"
                    f"  foreign CPU {fmt(r['foreign_cpu_pct'], '.0f')}%"
                )
                time.sleep(0.5)

        # -- rows lost ----------------------------------------------------------------
        gw_rounds = [r for r in rounds if r["config"] in GATEWAYS]
        loss = count_rows(home, gw_rounds)
        if loss.get("error"):
            args.keep = True  # keep the home so the worker can be re-run by hand
        summary = summarize(rounds, loss, args)
        summary["work_dir"] = str(work) if args.keep else None
        if args.json:
            sys.stdout.write(json.dumps(summary, default=str) + "\n")
        else:
            print_report(summary)
            if args.keep:
                print(f"work dir kept: {work}")
        return 0
    finally:
        emu.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
