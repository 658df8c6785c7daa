"""Realistic request histories with labelled faults, deterministic by seed, for the demo,
the notebooks, the dashboards' benchmark and tests. Never touches a home it was not given.

Traffic per service follows a daily and weekly cycle with Poisson noise; latency is
log-normal; each fault (a latency step, an error burst, a traffic drop, a token runaway)
is written to a label table with its service, signal and time window.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from suite.errors import AiopsError

SAMPLE_DIR = Path(__file__).resolve().parents[1] / "sample_data"
SAMPLE_REQUESTS = SAMPLE_DIR / "requests_sample.parquet"
SAMPLE_LABELS = SAMPLE_DIR / "labels_sample.csv"


@dataclass(frozen=True)
class ServiceProfile:
    name: str
    path: str
    peak_rpm: float  # requests per minute at the busiest hour
    latency_ms: float  # median latency
    error_ratio: float  # share of 5xx in normal operation
    kind: str = "http"
    llm_provider: str | None = None
    llm_model: str | None = None
    price_in: float = 0.0  # USD per million tokens
    price_out: float = 0.0


SERVICES: tuple[ServiceProfile, ...] = (
    ServiceProfile("policy-admin", "/policies/POL-{n}", 40, 45, 0.002),
    ServiceProfile("claims-api", "/claims/CLM-{n}", 30, 80, 0.004),
    ServiceProfile("quotes-api", "/quotes/new", 60, 35, 0.001),
    ServiceProfile("payments-api", "/payments/pay", 12, 120, 0.003),
    ServiceProfile(
        "openai",
        "/openai/v1/chat/completions",
        8,
        900,
        0.005,
        "llm",
        "openai",
        "gpt-4o-mini",
        0.15,
        0.60,
    ),
    ServiceProfile(
        "claude",
        "/anthropic/v1/messages",
        4,
        1400,
        0.005,
        "llm",
        "anthropic",
        "claude-3-5-haiku-20241022",
        0.80,
        4.00,
    ),
    ServiceProfile("insurance-tools", "/tools/mcp", 6, 60, 0.002, "mcp"),
)
TENANTS = ("acme-insurance", "northwind-mutual", "contoso-life")
FAULT_KINDS = ("latency_step", "error_burst", "traffic_drop", "token_runaway")
FAULT_SIGNAL = {
    "latency_step": "latency_p95_ms",
    "error_burst": "error_ratio",
    "traffic_drop": "requests",
    "token_runaway": "tokens",
}


@dataclass(frozen=True)
class Fault:
    service: str
    kind: str
    start: datetime
    end: datetime

    @property
    def signal(self) -> str:
        return FAULT_SIGNAL[self.kind]


def plan_faults(
    start: datetime, days: float, rng: np.random.Generator, per_day: float = 1.0
) -> list[Fault]:
    """Faults spread over the history (none in its first day, which baselines need)."""
    faults: list[Fault] = []
    n = int(round(max(days - 1, 0) * per_day))
    for _ in range(n):
        svc = SERVICES[int(rng.integers(len(SERVICES)))]
        kinds = FAULT_KINDS if svc.kind == "llm" else FAULT_KINDS[:3]
        kind = kinds[int(rng.integers(len(kinds)))]
        at = start + timedelta(minutes=float(rng.uniform(1440, days * 1440 - 90)))
        at = at.replace(second=0, microsecond=0)
        faults.append(Fault(svc.name, kind, at, at + timedelta(minutes=int(rng.integers(10, 45)))))
    return sorted(faults, key=lambda f: f.start)


def _daily_shape(minutes: np.ndarray) -> np.ndarray:
    """Relative load by minute: business-hours peak, a night trough, quieter weekends."""
    hour = (minutes % 1440) / 60.0
    day = (minutes // 1440) % 7  # 1970-01-01 was a Thursday: day 2, 3 = Sat, Sun
    shape = 0.15 + 0.85 * np.exp(-(((hour - 13.0) / 4.0) ** 2))
    return shape * np.where((day == 2) | (day == 3), 0.45, 1.0)


def generate(
    days: float = 14.0,
    seed: int = 7,
    end: datetime | None = None,
    rate: float = 1.0,
    faults_per_day: float = 1.0,
) -> tuple[pa.Table, list[Fault]]:
    """Requests (columns of the `requests` table) for `days` ending at `end` (default: the
    current minute), and the faults injected into them. Same arguments, same data."""
    if days <= 0 or rate <= 0:
        raise AiopsError("sample data: --days and --rate must be positive")
    rng = np.random.default_rng(seed)
    end = (end or datetime.now(UTC)).replace(second=0, microsecond=0, tzinfo=None)
    start = end - timedelta(days=days)
    n_min = int(days * 1440)
    epoch_min = int(start.replace(tzinfo=UTC).timestamp() // 60)
    minutes = np.arange(n_min, dtype=np.int64) + epoch_min
    shape = _daily_shape(minutes)
    faults = plan_faults(start, days, rng, faults_per_day)
    cols: dict[str, list[np.ndarray]] = {}

    def add(name: str, values: np.ndarray) -> None:
        cols.setdefault(name, []).append(values)

    for si, svc in enumerate(SERVICES):
        lam = svc.peak_rpm * rate * shape
        lat_factor = np.ones(n_min)
        err = np.full(n_min, svc.error_ratio)
        tok_factor = np.ones(n_min)
        for f in faults:
            if f.service != svc.name:
                continue
            a = int((f.start - start).total_seconds() // 60)
            b = int((f.end - start).total_seconds() // 60)
            if f.kind == "latency_step":
                lat_factor[a:b] *= 4.0
            elif f.kind == "error_burst":
                err[a:b] = 0.35
            elif f.kind == "traffic_drop":
                lam[a:b] *= 0.05
            else:
                tok_factor[a:b] *= 8.0
        counts = rng.poisson(lam)
        total = int(counts.sum())
        if total == 0:
            continue
        idx = np.repeat(np.arange(n_min), counts)
        ts_us = (minutes[idx] * 60 + rng.uniform(0, 60, total)) * 1_000_000
        duration = svc.latency_ms * lat_factor[idx] * rng.lognormal(0.0, 0.35, total)
        failed = rng.random(total) < err[idx]
        client_err = ~failed & (rng.random(total) < 0.02)
        status = np.where(failed, 503, np.where(client_err, 404, 200)).astype(np.int16)
        add("id", np.char.add(f"s{seed}-{si}-", np.arange(total).astype(str)).astype(object))
        add("ts", ts_us.astype("int64"))
        add("route", np.full(total, svc.name, dtype=object))
        add("method", np.full(total, "GET" if svc.kind == "http" else "POST", dtype=object))
        add("path", np.full(total, svc.path.replace("{n}", "000123"), dtype=object))
        add("status", status)
        add("duration_ms", duration)
        add("ttfb_ms", duration * rng.uniform(0.6, 0.95, total))
        add("request_bytes", rng.integers(200, 4000, total))
        add("response_bytes", rng.integers(300, 20_000, total))
        add("tenant", np.array(TENANTS, dtype=object)[rng.integers(0, len(TENANTS), total)])
        add("kind", np.full(total, svc.kind, dtype=object))
        is_llm = svc.kind == "llm"
        prompt = rng.integers(200, 1500, total) if is_llm else np.zeros(total, dtype=np.int64)
        completion = (
            (rng.integers(50, 400, total) * tok_factor[idx]).astype(np.int64)
            if is_llm
            else np.zeros(total, dtype=np.int64)
        )
        add("prompt_tokens", prompt)
        add("completion_tokens", completion)
        add("cost_usd", (prompt * svc.price_in + completion * svc.price_out) / 1e6)
        add("llm_provider", np.full(total, svc.llm_provider, dtype=object))
        add("llm_model", np.full(total, svc.llm_model, dtype=object))
        add("mcp_method", np.full(total, "tools/call" if svc.kind == "mcp" else None, dtype=object))
        add(
            "mcp_tool",
            np.full(total, "get_claim_status" if svc.kind == "mcp" else None, dtype=object),
        )
        add("usage_source", np.full(total, "provider" if is_llm else None, dtype=object))
    table = _to_arrow(cols)
    return table.sort_by("ts"), faults


def _to_arrow(cols: dict[str, list[np.ndarray]]) -> pa.Table:
    types = {
        "ts": pa.timestamp("us"),
        "status": pa.int16(),
        "duration_ms": pa.float64(),
        "ttfb_ms": pa.float64(),
        "cost_usd": pa.float64(),
    }
    arrays = {}
    for name, parts in cols.items():
        values = np.concatenate(parts)
        if name in ("prompt_tokens", "completion_tokens", "cost_usd"):
            # Only LLM calls carry tokens and cost: NULL elsewhere, as the gateway records.
            kinds = np.concatenate(cols["kind"])
            arrays[name] = pa.array(values, types.get(name), mask=kinds != "llm")
        elif name == "ts":
            arrays[name] = pa.array(values, pa.int64()).cast(pa.timestamp("us"))
        else:
            arrays[name] = pa.array(values, types.get(name))
    return pa.table(arrays)


def faults_table(faults: list[Fault]) -> pa.Table:
    return pa.table(
        {
            "service": [f.service for f in faults],
            "signal": [f.signal for f in faults],
            "kind": [f.kind for f in faults],
            "start": pa.array([f.start for f in faults], pa.timestamp("us")),
            "end": pa.array([f.end for f in faults], pa.timestamp("us")),
        }
    )


def load_into_store(store: object, requests: pa.Table, faults: list[Fault]) -> int:
    """Append the rows to `requests` (marking their minutes for the rollup job) and the
    faults to `sample_faults`, in one transaction. Returns the rows added."""
    from suite.store import Store

    assert isinstance(store, Store)
    labels = faults_table(faults)
    with store.write() as con:
        con.execute("BEGIN")
        con.register("sample_rows", requests)
        con.register("sample_labels", labels)
        con.execute("INSERT INTO requests BY NAME SELECT * FROM sample_rows")
        con.execute(
            "INSERT INTO rollup_dirty_minutes SELECT DISTINCT date_trunc('minute', ts) "
            "FROM sample_rows ON CONFLICT DO NOTHING"
        )
        con.execute(
            "CREATE TABLE IF NOT EXISTS sample_faults (service VARCHAR, signal VARCHAR, "
            'kind VARCHAR, start TIMESTAMP, "end" TIMESTAMP)'
        )
        con.execute("INSERT INTO sample_faults SELECT * FROM sample_labels")
        con.execute("COMMIT")
    return requests.num_rows


def read_sample_files(directory: Path = SAMPLE_DIR) -> tuple[pa.Table, list[Fault]]:
    """The committed sample (or files written by `--out-dir`): requests and faults."""
    import csv

    try:
        requests = pq.read_table(directory / SAMPLE_REQUESTS.name)
        with open(directory / SAMPLE_LABELS.name, newline="") as fh:
            faults = [
                Fault(
                    r["service"],
                    r["kind"],
                    datetime.fromisoformat(r["start"]),
                    datetime.fromisoformat(r["end"]),
                )
                for r in csv.DictReader(fh)
            ]
    except (OSError, KeyError, ValueError, pa.ArrowException) as e:
        raise AiopsError(f"{directory}: not a sample data directory: {e}") from None
    return requests, faults


def write_sample_files(requests: pa.Table, faults: list[Fault], out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    pq.write_table(requests, out_dir / SAMPLE_REQUESTS.name, compression="zstd")
    faults_table(faults).to_pandas().to_csv(out_dir / SAMPLE_LABELS.name, index=False)


def main(argv: list[str] | None = None) -> int:
    """`python -m suite.sample_data`: the same as `aiops sample-data`."""
    from suite.cli import main as cli_main

    return cli_main(["sample-data", *(sys.argv[1:] if argv is None else argv)])


def _utc_minute(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO date-time: {text!r}") from None
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--days", type=float, default=14.0, help="days of history (default 14)")
    p.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    p.add_argument(
        "--rate",
        type=float,
        default=1.0,
        help="traffic multiplier (default 1: about 90,000 calls a day)",
    )
    p.add_argument(
        "--end",
        type=_utc_minute,
        metavar="ISO",
        help="end of the history, e.g. 2026-11-01T00:00 (UTC; default: now)",
    )
    p.add_argument(
        "--faults-per-day", type=float, default=1.0, help="labelled faults per day (default 1)"
    )
    p.add_argument(
        "--out-dir",
        metavar="DIR",
        help="write requests_sample.parquet and labels_sample.csv here instead of loading "
        "the rows into the home's store",
    )


if __name__ == "__main__":
    sys.exit(main())
