"""Dashboard speed on ten million requests: every page's first full render and one filter
change, against the 2 s target (issue 5).

Seeds a temporary home with N generated requests over 14 days ending now
(bench/dashboard_seed.py, inside DuckDB) plus their minute rollups, and the small tables
every page reads (incidents with events, anomalies and suspects, changes in every state,
SLO history, forecasts, the service catalog, a gateway key, a chaos drill, the gateway
config: tests/dashboards/seed.py). Seeding is timed apart and is not part of the figures.

Then, for every page, with Streamlit's AppTest (the page script run in this process, each
page run once untimed first so its modules are imported, as in a running server, then its
data caches cleared): the first full render, and one filter change (a rerun with one widget
changed, a new cache key). And in a real headless Chromium against `aiops dashboard`
(Overview and Traffic explorer by default; --browser-pages all adds LLM and Gateway): from
clicking the page's sidebar link to the page's script finished with every Plotly chart
drawn (data points in at least one) and no spinner, and from a filter click to the same.
The untimed pages are visited first so the server has imported plotly and the data layer.

Usage: .venv/bin/python bench/dashboard.py [--rows 10000000] [--json]   (progress on stderr)
           [--home DIR (reuse or keep a seeded home)] [--browser-pages overview,traffic|all|none]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "bench")]

from dashboard_seed import seed  # noqa: E402

from suite.clock import utc_now  # noqa: E402
from suite.home import Home  # noqa: E402
from suite.store import Store  # noqa: E402
from tests.dashboards.seed import seed_home  # noqa: E402

TARGET_SECONDS = 2.0
DASHBOARDS = REPO / "dashboards"
CHROMIUM = "/usr/bin/chromium"


# -- what each page's filter change does (AppTest) --------------------------------------------
def _by_label(elements: Any, label: str) -> Any:
    found = [w for w in elements if w.label == label]
    if not found:
        raise SystemExit(f"bench: no widget labelled {label!r}")
    return found[0]


def _second_option(el: Any) -> Any:
    options = list(el.options)
    if len(options) < 2:
        raise SystemExit(f"bench: widget {el.label!r} has fewer than two options")
    return el.set_value(el.indices[0] + 1 if hasattr(el, "indices") else 1)


Action = Callable[[Any], Any]
APPTEST_PAGES: list[tuple[str, str, str, Action]] = [
    ("Overview", "overview.py", "time range 7 days",
     lambda at: at.segmented_control[0].set_value("Last 7 days")),
    ("Incidents", "incidents.py", "status: all",
     lambda at: _by_label(at.multiselect, "Status").set_value(
         ["open", "acknowledged", "resolved"])),
    ("SLOs", "slos.py", "another SLO",
     lambda at: at.selectbox(key="slo_name").set_value("quotes-latency")),
    ("Changes", "changes.py", "time range 30 days",
     lambda at: _by_label(at.selectbox, "Time range").set_value(
         _by_label(at.selectbox, "Time range").options[-1])),
    ("Traffic explorer", "traffic.py", "service claims-api",
     lambda at: _by_label(at.multiselect, "Service").set_value(["claims-api"])),
    ("Traffic explorer", "traffic.py", "status 5xx (raw rows)",
     lambda at: _by_label(at.multiselect, "Status class").set_value(["5xx"])),
    ("Traffic explorer", "traffic.py", "time range 7 days",
     lambda at: _by_label(at.selectbox, "Time range").set_value("Last 7 days")),
    ("LLM usage and cost", "llm.py", "time range 7 days",
     lambda at: _by_label(at.selectbox, "Time range").set_value("Last 7 days")),
    ("Capacity", "capacity.py", "another series",
     lambda at: at.selectbox(key="forecast_series").set_value(1)),
    ("Services", "services.py", "previous month",
     lambda at: at.selectbox(key="sla_month").set_value(at.selectbox(key="sla_month").options[1])),
    ("Gateway", "gateway.py", "window 24 hours",
     lambda at: at.segmented_control(key="health_window").set_value("Last 24 hours")),
]  # fmt: skip


def seed_bench_home(root: Path, rows: int) -> dict[str, float]:
    """The small exact tables of the dashboard tests, then `rows` generated requests."""
    t0 = time.perf_counter()
    seed_home(root)
    store = Store(Home(root))
    with store.write() as con:
        # A second SLO, so the SLOs page has a choice to change to.
        con.execute(
            "INSERT INTO slo_status SELECT 'quotes-latency', 'quotes-api', 'latency', 99.0, "
            "?::TIMESTAMP - to_minutes(i), 30, 0.5, 0.4, 0.3, 0.3, 0.2, 0.9, 100000, 10, "
            "0.9, 'none', NULL FROM range(0, 1440, 10) t(i)",
            [utc_now().replace(second=0, microsecond=0)],
        )
    timings = seed(store, rows)
    timings["extras_seconds"] = time.perf_counter() - t0 - sum(timings.values())
    return timings


def time_apptest(root: Path) -> list[dict[str, Any]]:
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    os.environ["AIOPS_HOME"] = str(root)
    # AppTest runs pages without a server: Streamlit says so once per page; not news here.
    for name in ("streamlit", "streamlit.runtime"):
        logging.getLogger(name).setLevel(logging.ERROR)
    # Warm the imports the pages share (a running server has them loaded already).
    import plotly.express  # noqa: F401
    import plotly.graph_objects  # noqa: F401
    import plotly.subplots  # noqa: F401

    # A running server has imported every page's modules; the figure is the first render
    # with cold data caches (cleared below), so run each page once first and throw it away.
    for page in dict.fromkeys(p for _, p, _, _ in APPTEST_PAGES):
        AppTest.from_file(str(DASHBOARDS / page), default_timeout=600).run()
    results = []
    for name, page, change, action in APPTEST_PAGES:
        st.cache_data.clear()
        at = AppTest.from_file(str(DASHBOARDS / page), default_timeout=600)
        t0 = time.perf_counter()
        at.run()
        first = time.perf_counter() - t0
        _check(at, name)
        t0 = time.perf_counter()
        action(at).run()
        changed = time.perf_counter() - t0
        _check(at, f"{name} ({change})")
        results.append(
            {
                "how": "apptest",
                "page": name,
                "filter": change,
                "first_s": first,
                "filter_s": changed,
            }
        )
        print(
            f"  apptest {name:<20} {change:<24} {first:6.2f} s  {changed:6.2f} s",
            file=sys.stderr,
            flush=True,
        )
    return results


def _check(at: Any, what: str) -> None:
    if at.exception:
        raise SystemExit(f"bench: {what} raised: {[e.message for e in at.exception]}")
    if not at.get("plotly_chart"):
        raise SystemExit(f"bench: {what} drew no chart (is the home seeded?)")


# -- the browser ------------------------------------------------------------------------------
SETTLED_JS = """
(title) => {
    const app = document.querySelector('[data-testid="stApp"]');
    if (!app || app.getAttribute('data-test-script-state') !== 'notRunning') return false;
    const h1 = document.querySelector('[data-testid="stMain"] h1');
    if (!h1 || !h1.innerText.includes(title)) return false;
    if (document.querySelector('[data-testid="stSkeleton"], [data-testid="stSpinner"]')) return false;
    const charts = Array.from(document.querySelectorAll('[data-testid="stPlotlyChart"]'));
    const drawn = charts.map(el => el.querySelector('.js-plotly-plot'));
    return drawn.length > 0 && drawn.every(gd => gd && gd._fullData)
        && drawn.some(gd => gd._fullData.some(t => (t._length || 0) > 0));
}
"""
# Set before a filter click: notes when the app's script starts running again.
WATCH_RUN_JS = """
() => {
    const app = document.querySelector('[data-testid="stApp"]');
    window.__aiopsRan = false;
    new MutationObserver(() => {
        if (app.getAttribute('data-test-script-state') === 'running') window.__aiopsRan = true;
    }).observe(app, {attributes: true, attributeFilter: ['data-test-script-state']});
}
"""
RERAN_JS = "(title) => window.__aiopsRan && (" + SETTLED_JS.strip() + ")(title)"

# page: its sidebar label, its title (the <h1>), what the filter change does, and how to
# click it (a Playwright function of the page).
BROWSER_PAGES: dict[str, tuple[str, str, str, Callable[[Any], None]]] = {
    "overview": ("Overview", "Overview", "time range 7 days",
                 lambda pg: _segment(pg, "Last 7 days")),
    "traffic": ("Traffic explorer", "Traffic explorer", "time range 7 days",
                lambda pg: _pick(pg, "Time range", "Last 7 days")),
    "llm": ("LLM usage and cost", "LLM usage and cost", "time range 7 days",
            lambda pg: _pick(pg, "Time range", "Last 7 days")),
    "gateway": ("Gateway", "Gateway", "window 24 hours",
                lambda pg: _segment(pg, "Last 24 hours")),
}  # fmt: skip


def _nav(pg: Any, label: str, title: str) -> None:
    """Click the page's link in the sidebar; wait until it has run and drawn its charts."""
    pg.locator('[data-testid="stSidebarNavLink"]').filter(has_text=label).first.click()
    pg.wait_for_function(SETTLED_JS, arg=title, timeout=120_000)


def _segment(pg: Any, option: str) -> None:
    pg.locator('[data-testid="stButtonGroup"] button').filter(has_text=option).first.click()


def _pick(pg: Any, label: str, option: str) -> None:
    pg.locator('[data-testid="stSelectbox"]').filter(has_text=label).first.click()
    pg.get_by_role("option", name=option).click()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def time_browser(root: Path, pages: list[str]) -> list[dict[str, Any]]:
    import httpx
    from playwright.sync_api import sync_playwright

    port = _free_port()
    aiops = str(Path(sys.executable).parent / "aiops")
    server = subprocess.Popen(
        [aiops, "dashboard", "--home", str(root), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    results = []
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/_stcore/health", timeout=2).text == "ok":
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("bench: aiops dashboard did not come up")
            time.sleep(0.2)
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=CHROMIUM, args=["--no-sandbox"], headless=True
            )
            # The app's first load (the frontend bundle, the websocket session), then the
            # untimed pages, so the server has imported plotly and the data layer as a
            # running server has, while the timed pages' data caches stay cold. Each timed
            # page is then reached the way a person does: by its link in the sidebar.
            context = browser.new_context(viewport={"width": 1400, "height": 900})
            pg = context.new_page()
            pg.set_default_timeout(120_000)
            pg.goto(f"{url}/services")
            pg.wait_for_function(SETTLED_JS, arg="Services", timeout=120_000)
            for key in BROWSER_PAGES:
                if key not in pages:
                    _nav(pg, BROWSER_PAGES[key][0], BROWSER_PAGES[key][1])
            for key in pages:
                name, title, change, click = BROWSER_PAGES[key]
                t0 = time.perf_counter()
                _nav(pg, name, title)
                first = time.perf_counter() - t0
                pg.evaluate(WATCH_RUN_JS)
                t0 = time.perf_counter()
                click(pg)
                pg.wait_for_function(RERAN_JS, arg=title, timeout=120_000)
                changed = time.perf_counter() - t0
                if pg.locator('[data-testid="stException"]').count():
                    raise SystemExit(f"bench: {name} shows an exception in the browser")
                results.append(
                    {"how": "browser", "page": name, "filter": change, "first_s": first,
                     "filter_s": changed}
                )  # fmt: skip
                print(f"  browser {name:<20} {change:<24} {first:6.2f} s  {changed:6.2f} s",
                      file=sys.stderr, flush=True)  # fmt: skip
            context.close()
            browser.close()
    finally:
        server.terminate()
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
    return results


def table(results: list[dict[str, Any]]) -> str:
    head = (
        f"{'how':<8} {'page':<20} {'filter change':<24} {'first render s':>14} "
        f"{'filter change s':>15} {'target s':>8} {'ratio (target/worst)':>20}"
    )
    lines = [head, "-" * len(head)]
    for r in results:
        worst = max(r["first_s"], r["filter_s"])
        lines.append(
            f"{r['how']:<8} {r['page']:<20} {r['filter']:<24} {r['first_s']:>14.2f} "
            f"{r['filter_s']:>15.2f} {TARGET_SECONDS:>8.1f} {TARGET_SECONDS / worst:>19.2f}x"
            + ("" if worst <= TARGET_SECONDS else "  MISSED")
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rows", type=int, default=10_000_000, help="requests to seed")
    ap.add_argument("--home", type=Path, help="seed here (or reuse it if it has requests)")
    ap.add_argument(
        "--browser-pages", default="overview,traffic",
        help=f"pages timed in Chromium: a comma list of {', '.join(BROWSER_PAGES)}, 'all' or 'none'",
    )  # fmt: skip
    ap.add_argument("--json", action="store_true", help="print one JSON object instead")
    args = ap.parse_args(argv)
    if args.rows < 1000:
        ap.error(f"--rows: {args.rows} is too few (at least 1000)")
    pages = (
        list(BROWSER_PAGES) if args.browser_pages == "all"
        else [] if args.browser_pages == "none"
        else [p.strip() for p in args.browser_pages.split(",") if p.strip()]
    )  # fmt: skip
    unknown = [p for p in pages if p not in BROWSER_PAGES]
    if unknown:
        ap.error(f"--browser-pages: unknown page(s) {', '.join(unknown)}")

    tmp = None
    if args.home is None:
        tmp = Path(tempfile.mkdtemp(prefix="aiops-bench-dashboard-"))
        root = tmp / "home"
    else:
        root = args.home
    try:
        store = Store(Home(root))
        have = 0
        if (root / "suite.duckdb").exists():
            have = int(store.query("SELECT count(*) FROM requests").item())
        if have >= args.rows:
            seeding: dict[str, float] = {}
            print(f"reusing {root}: {have:,} requests", file=sys.stderr, flush=True)
        else:
            if have:
                raise SystemExit(f"bench: {root} has {have:,} requests, fewer than --rows")
            print(f"seeding {args.rows:,} requests into {root} ...", file=sys.stderr, flush=True)
            seeding = seed_bench_home(root, args.rows)
            print(
                "  " + ", ".join(f"{k} {v:.1f}" for k, v in seeding.items()),
                file=sys.stderr,
                flush=True,
            )
        rows = int(store.query("SELECT count(*) FROM requests").item())
        results = time_apptest(root)
        if pages:
            results += time_browser(root, pages)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)

    worst = max(max(r["first_s"], r["filter_s"]) for r in results)
    if args.json:
        print(json.dumps({"rows": rows, "seeding": seeding, "target_s": TARGET_SECONDS,
                          "results": results, "worst_s": worst,
                          "ratio": TARGET_SECONDS / worst}, indent=2))  # fmt: skip
    else:
        print(f"\nDashboards on {rows:,} requests (target {TARGET_SECONDS:.0f} s per render)")
        print(table(results))
        print(f"worst {worst:.2f} s: ratio target/worst {TARGET_SECONDS / worst:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
