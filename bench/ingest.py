"""Ingest throughput: spool segments -> DuckDB `requests` with suite.ingest.ingest_spool.

Generates realistic gateway records (REST, LLM and MCP calls from three gateways, with
errors, traces and redacted queries) as spool segments written with
suite.spool.write_segment_atomically, exactly as gateways write them; then times
`ingest_spool(Store(home))` on a fresh home (schema creation included, as for a fresh
worker) and verifies count(*) and count(distinct id) in DuckDB.

Generation is timed separately and is not part of the ingest figure.

Usage: .venv/bin/python bench/ingest.py [--rows 1000000] [--segment-rows 5000] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

import suite
from suite.home import resolve_home
from suite.ingest import ingest_spool
from suite.schema import REQUEST_COLUMN_NAMES, REQUEST_COLUMNS
from suite.spool import list_ready_segments, spool_segment_name, write_segment_atomically
from suite.store import Store

TARGET_ROWS_PER_SECOND = 500_000
GATEWAYS = ("g41021x3fa9c1", "g41388x07be2d", "g52210xc1d004")
POOL_SIZE = 20_000  # distinct record bodies (everything but id, ts, gateway_id)

USER_AGENTS = (
    "python-httpx/0.27.2", "okhttp/4.12.0", "Mozilla/5.0 (Windows NT 10.0; Win64; x64)",
    "claims-portal/3.4.1", "OpenAI/Python 1.51.0", "mcp-client/0.9", "curl/8.5.0",
)  # fmt: skip
ROUTES = (
    # name, prefix, upstreams, kind, weight
    ("claims", "/claims", ("http://10.0.1.11:8080", "http://10.0.1.12:8080"), "http", 40),
    ("policies", "/policies", ("http://10.0.2.21:8080",), "http", 25),
    ("quotes", "/quotes", ("https://quotes.internal:8443/v2",), "http", 15),
    ("openai", "/llm", ("https://api.openai.com",), "llm", 12),
    ("tools", "/mcp", ("http://10.0.3.5:7000",), "mcp", 8),
)
LLM_MODELS = (
    ("gpt-4o-mini", 0.15e-6, 0.6e-6),
    ("gpt-4o", 2.5e-6, 10e-6),
    ("o3-mini", 1.1e-6, 4.4e-6),
)
MCP_TOOLS = ("lookup_policy", "file_claim", "get_quote", "search_documents")


def machine_busy_seconds() -> float | None:
    """CPU seconds spent busy by the whole machine so far (all cores), from /proc/stat."""
    try:
        with open("/proc/stat") as fh:
            v = [int(x) for x in fh.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = v[3] + (v[4] if len(v) > 4 else 0)
    return (sum(v[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _hex(rng: random.Random, n: int) -> str:
    return f"{rng.getrandbits(4 * n):0{n}x}"


def _outcome(rng: random.Random) -> tuple[int | None, str | None, str | None]:
    x = rng.random()
    if x < 0.86:
        return 200, None, None
    if x < 0.90:
        return 201, None, None
    if x < 0.935:
        return 404, None, None
    if x < 0.95:
        return 429, None, None
    if x < 0.97:
        return 500, None, None
    if x < 0.98:
        return 502, "upstream_unreachable", "[Errno 111] Connection refused"
    if x < 0.985:
        return 502, "upstream_reset", "Server disconnected."
    if x < 0.99:
        return 504, "upstream_timeout", "Server timed out."
    if x < 0.995:
        return 404, "no_route", "no route matches path '/unknown'"
    return None, "client_disconnected", "Client disconnected."


def make_body_pool(seed: int = 7) -> list[dict[str, object]]:
    """POOL_SIZE realistic records (column name -> value), without id, ts and gateway_id."""
    rng = random.Random(seed)
    weights = [r[4] for r in ROUTES]
    pool = []
    for _ in range(POOL_SIZE):
        name, prefix, upstreams, kind, _w = rng.choices(ROUTES, weights)[0]
        status, error, detail = _outcome(rng)
        if error == "no_route":
            name, upstream, path = None, None, "/unknown"
        else:
            upstream = rng.choice(upstreams)
            path = prefix
        method, query = "GET", None
        llm_provider = llm_model = prompt = completion = cost = ttft = None
        mcp_method = mcp_tool = None
        streamed = False
        if kind == "http" and name is not None:
            item = f"{name[:3].upper()}-{rng.randrange(1, 999_999):06d}"
            if rng.random() < 0.3:
                method = rng.choice(("POST", "PUT", "PATCH", "DELETE"))
                path = f"{prefix}/{item}" if method != "POST" else prefix
            else:
                path = f"{prefix}/{item}" if rng.random() < 0.7 else prefix
                if rng.random() < 0.3:
                    query = f"page={rng.randrange(1, 40)}&size=50"
                    if rng.random() < 0.2:
                        query += "&token=REDACTED"
        elif kind == "llm" and name is not None:
            method = "POST"
            path = f"{prefix}/v1/chat/completions"
            model, pin, pout = rng.choice(LLM_MODELS)
            llm_provider, llm_model = "openai", model
            if status is not None and status < 300:
                prompt = rng.randrange(20, 6000)
                completion = rng.randrange(1, 1500)
                cost = prompt * pin + completion * pout
            streamed = rng.random() < 0.5
        elif kind == "mcp" and name is not None:
            method = "POST"
            path = prefix
            mcp_method = rng.choice(("tools/call", "tools/call", "tools/list", "initialize"))
            mcp_tool = rng.choice(MCP_TOOLS) if mcp_method == "tools/call" else None
        if kind == "llm":
            duration = rng.lognormvariate(7.0, 0.8)  # ~1.1 s median
            ttfb = duration * rng.uniform(0.05, 0.4)
            ttft = ttfb * rng.uniform(1.0, 1.3) if streamed else None
        else:
            duration = rng.lognormvariate(3.2, 0.9)  # ~25 ms median
            ttfb = duration * rng.uniform(0.6, 0.98)
        if error in ("upstream_unreachable", "no_route"):
            ttfb = None
        request_bytes = rng.randrange(80, 4000) if method != "GET" else 0
        response_bytes = rng.randrange(60, 40_000) if status is not None else 0
        api_key = f"key_{rng.randrange(1, 60):03d}" if rng.random() < 0.7 else None
        tenant = f"tenant-{rng.randrange(1, 12)}" if api_key else None
        traced = rng.random() < 0.4
        pool.append({
            "route": name, "method": method, "scheme": "http",
            "host": "gateway.example.internal:8080", "path": path, "query": query,
            "status": status, "error": error, "error_detail": detail,
            "duration_ms": round(duration, 3),
            "ttfb_ms": None if ttfb is None else round(ttfb, 3),
            "request_bytes": request_bytes, "response_bytes": response_bytes,
            "upstream": upstream, "api_key_id": api_key, "tenant": tenant,
            "kind": kind if name is not None else "http",
            "llm_provider": llm_provider, "llm_model": llm_model,
            "prompt_tokens": prompt, "completion_tokens": completion, "cost_usd": cost,
            "streamed": streamed, "ttft_ms": None if ttft is None else round(ttft, 3),
            "mcp_method": mcp_method, "mcp_tool": mcp_tool,
            "trace_id": _hex(rng, 32) if traced else None,
            "parent_span_id": _hex(rng, 16) if traced else None,
            "http_version": "HTTP/1.1" if rng.random() < 0.9 else "HTTP/2.0",
            "user_agent": rng.choice(USER_AGENTS),
            "client_addr": f"10.20.{rng.randrange(0, 8)}.{rng.randrange(1, 255)}",
            # Columns newer schemas may have; ignored when REQUEST_COLUMNS lacks them.
            "llm_api": "chat" if llm_model else None,
            "llm_requested_model": llm_model,
            "usage_source": "provider" if prompt is not None else None,
            "llm_finish_reason": "stop" if completion is not None else None,
        })  # fmt: skip
    return pool


def generate(spool_dir: Path, rows: int, segment_rows: int, seed: int = 11) -> tuple[int, int]:
    """Write `rows` records as segments of `segment_rows`; (segments, rows) written."""
    body_pool = make_body_pool()
    # Rows follow REQUEST_COLUMNS, whatever it holds: (id, ts) + the rest by name, None for
    # columns this generator does not know.
    names = [c.name for c in REQUEST_COLUMNS]
    assert names[:2] == ["id", "ts"], names[:2]
    rest = names[2:]
    pools = {
        g: [tuple(g if c == "gateway_id" else b.get(c) for c in rest) for b in body_pool]
        for g in GATEWAYS
    }
    rng = random.Random(seed)
    t_start = time.time() - 86_400  # the last 24 hours
    step = 86_400 / max(rows, 1)
    counters = dict.fromkeys(GATEWAYS, 0)
    seqs = dict.fromkeys(GATEWAYS, 0)
    written = segments = 0
    while written < rows:
        n = min(segment_rows, rows - written)
        gw = GATEWAYS[segments % len(GATEWAYS)]
        pool = pools[gw]
        c0 = counters[gw]
        counters[gw] = c0 + n
        ts0 = t_start + written * step
        picks = rng.choices(pool, k=n)
        batch = [(f"{gw}-{c0 + i + 1}", ts0 + i * step) + body for i, body in enumerate(picks)]
        seqs[gw] += 1
        write_segment_atomically(spool_dir, spool_segment_name(gw, seqs[gw], now=ts0), batch)
        written += n
        segments += 1
    return segments, written


def run(args: argparse.Namespace) -> dict[str, object]:
    work = Path(tempfile.mkdtemp(prefix="aiops-bench-ingest-"))
    try:
        home = resolve_home(work / "home").ensure()

        t0 = time.perf_counter()
        segments, rows = generate(home.spool_dir, args.rows, args.segment_rows)
        gen_seconds = time.perf_counter() - t0
        ready = len(list_ready_segments(home.spool_dir))
        spool_bytes = sum(p.stat().st_size for p in home.spool_dir.glob("*.parquet"))

        # Reference only: schema creation on an empty home (it is part of the timed ingest,
        # as it is for a fresh worker).
        ref_home = resolve_home(work / "schema-ref")
        t0 = time.perf_counter()
        Store(ref_home).ensure_schema()
        schema_seconds = time.perf_counter() - t0

        busy0, cpu0 = machine_busy_seconds(), time.process_time()
        t0 = time.perf_counter()
        result = ingest_spool(Store(home))
        ingest_seconds = time.perf_counter() - t0
        cpu = time.process_time() - cpu0  # all threads of this process (DuckDB's too)
        busy1 = machine_busy_seconds()
        foreign = (
            None
            if busy0 is None or busy1 is None
            else 100.0 * max(0.0, busy1 - busy0 - cpu) / (ingest_seconds * (os.cpu_count() or 1))
        )

        check = (
            Store(home)
            .query(
                "select count(*) n, count(distinct id) ids, count(distinct gateway_id) gws, "
                "min(ts) first_ts, max(ts) last_ts from requests"
            )
            .to_dicts()[0]
        )
        left = len(list_ready_segments(home.spool_dir))
        db_bytes = home.db_path.stat().st_size
        rps = rows / ingest_seconds if ingest_seconds > 0 else 0.0
        return {
            "rows": rows,
            "segment_rows": args.segment_rows,
            "segments": segments,
            "segments_ready": ready,
            "spool_mb": round(spool_bytes / 1e6, 1),
            "generate_seconds": round(gen_seconds, 3),
            "ingest_seconds": round(ingest_seconds, 3),
            "ingest_internal_seconds": round(result.seconds, 3),
            "schema_creation_seconds_reference": round(schema_seconds, 3),
            "rows_per_second": round(rps),
            "ingest_cpu_seconds": round(cpu, 3),
            "foreign_cpu_pct": None if foreign is None else round(foreign, 1),
            "cpus": os.cpu_count(),
            "target_rows_per_second": TARGET_ROWS_PER_SECOND,
            "target_met": rps >= TARGET_ROWS_PER_SECOND,
            "ingest_result": {
                "rows": result.rows,
                "segments": result.segments,
                "skipped_already_loaded": result.skipped_already_loaded,
                "quarantined": len(result.quarantined),
            },
            "count": int(check["n"]),
            "count_distinct_id": int(check["ids"]),
            "distinct_gateways": int(check["gws"]),
            "count_ok": int(check["n"]) == rows,
            "distinct_id_ok": int(check["ids"]) == rows,
            "segments_left_in_spool": left,
            "db_mb": round(db_bytes / 1e6, 1),
            "columns": len(REQUEST_COLUMN_NAMES),
            "suite_source": str(Path(suite.__file__).parent),
            "work_dir": str(work) if args.keep else None,
        }
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def print_report(r: dict[str, object]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 110)

    def ok(flag: object) -> str:
        return "[green]ok[/]" if flag else "[red]FAILED[/]"

    t = Table(title="Spool generation (not part of the ingest figure)", title_justify="left")
    for col in ("rows", "segments", "rows/segment", "spool MB", "columns", "seconds"):
        t.add_column(col, justify="right")
    t.add_row(
        f"{r['rows']:,}", f"{r['segments']:,}", f"{r['segment_rows']:,}", f"{r['spool_mb']}",
        str(r["columns"]), f"{r['generate_seconds']:.2f}",
    )  # fmt: skip
    console.print(t)
    console.print(f"suite imported from {r['suite_source']}")

    t = Table(title="ingest_spool(Store(home)) on a fresh home", title_justify="left")
    for col in ("rows", "segments", "seconds", "rows/s", "target rows/s", "result"):
        t.add_column(col, justify="right")
    t.add_row(
        f"{r['ingest_result']['rows']:,}", f"{r['ingest_result']['segments']:,}",
        f"{r['ingest_seconds']:.3f}", f"{r['rows_per_second']:,}",
        f">= {r['target_rows_per_second']:,}",
        "[green]met[/]" if r["target_met"] else "[red]NOT met[/]",
    )  # fmt: skip
    console.print(t)
    console.print(
        f"IngestResult.seconds {r['ingest_internal_seconds']:.3f} s; CPU used by the ingest "
        f"{r['ingest_cpu_seconds']:.2f} s on {r['cpus']} cores; schema creation on an empty home "
        f"(reference, included above) {r['schema_creation_seconds_reference']:.3f} s; "
        f"DuckDB file {r['db_mb']} MB"
    )
    if r["foreign_cpu_pct"] is not None:
        warn = r["foreign_cpu_pct"] > 10
        console.print(
            f"{'[yellow]warning:[/] ' if warn else ''}CPU used by other processes during the "
            f"ingest: {r['foreign_cpu_pct']:.0f}% of the machine"
            + (" (the figure above is less trustworthy)" if warn else "")
        )

    t = Table(title="Verification in DuckDB", title_justify="left")
    t.add_column("check")
    t.add_column("expected", justify="right")
    t.add_column("got", justify="right")
    t.add_column("")
    t.add_row("count(*)", f"{r['rows']:,}", f"{r['count']:,}", ok(r["count_ok"]))
    t.add_row(
        "count(distinct id)",
        f"{r['rows']:,}",
        f"{r['count_distinct_id']:,}",
        ok(r["distinct_id_ok"]),
    )
    t.add_row(
        "segments left in spool",
        "0",
        str(r["segments_left_in_spool"]),
        ok(r["segments_left_in_spool"] == 0),
    )
    t.add_row(
        "quarantined",
        "0",
        str(r["ingest_result"]["quarantined"]),
        ok(r["ingest_result"]["quarantined"] == 0),
    )
    console.print(t)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.rsplit("\nUsage:", 1)[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"Target printed (not asserted): >= {TARGET_ROWS_PER_SECOND:,} rows/s.",
    )
    p.add_argument(
        "--rows", type=int, default=1_000_000, help="records to generate (default 1,000,000)"
    )
    p.add_argument(
        "--segment-rows", type=int, default=5000, help="rows per spool segment (default 5,000)"
    )
    p.add_argument("--json", action="store_true", help="print the results as one JSON object")
    p.add_argument("--keep", action="store_true", help="keep the temporary home")
    args = p.parse_args(argv)
    if args.rows < 1 or args.segment_rows < 1:
        p.error("--rows and --segment-rows must be >= 1")
    result = run(args)
    if args.json:
        sys.stdout.write(json.dumps(result) + "\n")
    else:
        print_report(result)
    ok = result["count_ok"] and result["distinct_id_ok"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
