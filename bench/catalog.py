"""Times the catalog job (observed dependencies) on N generated requests (default 2 million
over 7 days, a third of them traced calls in three-call traces, some with x-aiops-caller).

Prints the first run (every row examined) and an incremental run after one more minute of
traffic (only the lookback hours re-examined). Uses a temporary home; writes nothing to the
repository. `python bench/catalog.py [--rows N]`.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import timedelta

from suite.catalog import run_catalog
from suite.clock import utc_now
from suite.config import parse_gateway_config
from suite.store import Store

ROUTES = ("claims-assistant", "llm", "policy-tools", "quotes-api")

SEED_SQL = """
INSERT INTO requests (id, ts, route, duration_ms, trace_id, parent_span_id, caller, status)
SELECT 'b' || i,
       $start::TIMESTAMP + to_microseconds(((i // 3) * $step_us) + (i % 3) * 1000),
       CASE WHEN i % 30 < 10 THEN
                CASE i % 3 WHEN 0 THEN 'claims-assistant' WHEN 1 THEN 'llm' ELSE 'policy-tools' END
            ELSE 'quotes-api' END,
       CASE WHEN i % 30 < 10 AND i % 3 = 0 THEN 50.0 ELSE 5.0 END,
       CASE WHEN i % 30 < 10 THEN (i // 3)::VARCHAR END,
       CASE WHEN i % 30 < 10 THEN i::VARCHAR END,
       CASE WHEN i % 30 = 29 THEN 'batch-rater' END,
       200
FROM range($first, $last) t(i)
"""


def seed(store: Store, first: int, last: int, start: object, step_us: int) -> None:
    with store.write() as con:
        con.execute(SEED_SQL, {"first": first, "last": last, "start": start, "step_us": step_us})


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=2_000_000)
    args = p.parse_args()
    config = parse_gateway_config(
        {"routes": [{"name": n, "prefix": f"/{n}", "upstreams": ["http://x:1"]} for n in ROUTES]},
        "bench.toml",
    )
    now = utc_now()
    start = now - timedelta(days=7)
    step_us = int(7 * 86400 * 1e6 * 3 / args.rows)
    with tempfile.TemporaryDirectory() as home:
        store = Store(home)
        t0 = time.perf_counter()
        seed(store, 0, args.rows, start, step_us)
        print(f"seeded {args.rows:,} requests in {time.perf_counter() - t0:.1f} s")
        first = run_catalog(store, config, now=now)
        print(f"first run:       {first.seconds:.2f} s ({first})")
        extra = max(args.rows // (7 * 1440), 3)
        seed(store, args.rows, args.rows + extra, start, step_us)
        again = run_catalog(store, config, now=now)
        print(f"incremental run: {again.seconds:.2f} s after {extra:,} more rows ({again})")


if __name__ == "__main__":
    main()
