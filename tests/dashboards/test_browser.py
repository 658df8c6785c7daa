"""What a person sees: the real `aiops dashboard` server on a loopback port, on a seeded
home, driven by a real headless Chromium (Debian's /usr/bin/chromium through Playwright).

Every page of the navigation loads with no Streamlit exception element, its Plotly charts
are drawn with data points and a seeded number shows; one incident is acknowledged by
clicking, and the store (read by the CLI) has it acknowledged with a dashboard audit row.
Screenshots of every page land in <repo>/test-artifacts/screenshots/.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.dashboards.seed import CLAIMS_UPSTREAM, Seeded, seed_home
from tests.integration.helpers import query_json
from tests.procs import AIOPS, REPO, Proc, free_port, run_aiops

pytestmark = [pytest.mark.browser, pytest.mark.integration]

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = REPO / "test-artifacts" / "screenshots"
ACTOR = "browser-analyst"
TIMEOUT_MS = 90_000  # the machine is shared and loaded: wait long, but on elements

# Every page of the navigation: its sidebar label and its title (the <h1>).
PAGES = {
    "Overview": "Overview",
    "Incidents": "Incidents",
    "SLOs": "SLOs",
    "Changes": "Changes",
    "Traffic explorer": "Traffic explorer",
    "LLM usage and cost": "LLM usage and cost",
    "Capacity": "Capacity",
    "Services": "Services",
    "Gateway": "Gateway",
}

# Plotly keeps each drawn trace's point count in gd._fullData[i]._length (the x/y arrays
# may be typed-array encoded); a chart with data has at least one trace with points.
CHART_POINTS_JS = """
() => Array.from(document.querySelectorAll('[data-testid="stPlotlyChart"]')).map(el => {
    const gd = el.querySelector('.js-plotly-plot');
    if (!gd || !gd._fullData) return null;
    return gd._fullData.map(t => t._length || 0);
})
"""

# The app has finished its script run and drawn every chart it placed on the page.
SETTLED_JS = """
(title) => {
    const app = document.querySelector('[data-testid="stApp"]');
    if (!app || app.getAttribute('data-test-script-state') !== 'notRunning') return false;
    const h1 = document.querySelector('[data-testid="stMain"] h1');
    if (!h1 || !h1.innerText.includes(title)) return false;
    if (document.querySelector('[data-testid="stSkeleton"], [data-testid="stSpinner"]')) return false;
    const charts = Array.from(document.querySelectorAll('[data-testid="stPlotlyChart"]'));
    return charts.every(el => {
        const gd = el.querySelector('.js-plotly-plot');
        return gd && gd._fullData && gd._fullData.length > 0;
    });
}
"""


class Dashboard(NamedTuple):
    url: str
    root: Path
    seeded: Seeded
    total_calls: int
    proc: Proc


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    """`aiops dashboard` on a seeded home (the seed of the AppTest tests)."""
    root = tmp_path_factory.mktemp("browser") / "home"
    seeded = seed_home(root)
    total = query_json(root, "SELECT count(*) AS n FROM requests")[0]["n"]
    port = free_port()
    proc = Proc(
        [AIOPS, "dashboard", "--home", str(root), "--port", str(port)],
        env={"AIOPS_USER": ACTOR, "AIOPS_HOME": str(root)},
    )
    try:
        proc.wait_for(rf"aiops dashboard on http://127\.0\.0\.1:{port}", timeout=60)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"{url}/_stcore/health", timeout=2).text == "ok":
                    break
            except httpx.HTTPError:
                pass
            assert proc.popen.poll() is None, proc.output
            assert time.monotonic() < deadline, f"no health answer:\n{proc.output}"
            time.sleep(0.2)
        yield Dashboard(url, root, seeded, int(total), proc)
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"], headless=True)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser: Browser, dashboard: Dashboard) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    pg = context.new_page()
    pg.set_default_timeout(TIMEOUT_MS)
    pg.goto(dashboard.url + "/")
    pg.wait_for_selector('[data-testid="stSidebarNavLink"]')
    try:
        yield pg
    finally:
        context.close()


def settle(pg: Page, title: str) -> None:
    pg.wait_for_function(SETTLED_JS, arg=title, timeout=TIMEOUT_MS)


def open_page(pg: Page, label: str) -> None:
    """Click the page's link in the sidebar and wait for its run to finish."""
    link = pg.locator('[data-testid="stSidebarNavLink"]').filter(
        has_text=re.compile(rf"^\W*\w*\s*{re.escape(label)}\s*$")
    )
    link.click()
    settle(pg, PAGES[label])


def metrics(pg: Page) -> dict[str, str]:
    out = {}
    for m in pg.locator('[data-testid="stMetric"]').all():
        label = m.locator('[data-testid="stMetricLabel"]').inner_text().strip()
        out[label] = m.locator('[data-testid="stMetricValue"]').inner_text().strip()
    return out


def main_text(pg: Page) -> str:
    return pg.locator('[data-testid="stMain"]').inner_text()


def shot(pg: Page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    pg.screenshot(path=str(path), full_page=True)
    return path


def slug(label: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")


def expected(d: Dashboard) -> dict[str, tuple[dict[str, str], list[str]]]:
    """Per page: metric values and texts the seed makes certain."""
    s = d.seeded
    return {
        "Overview": ({"Calls": f"{d.total_calls:,}", "Open incidents": "1"}, []),
        "Incidents": ({"Matching incidents": "1"}, ["claims-api: error_ratio anomaly"]),
        "SLOs": ({"SLOs": "1"}, ["claims-availability"]),
        "Changes": ({"Changes in range": "4", "Awaiting approval": "1"}, []),
        "Traffic explorer": (
            {
                "Matching calls": f"{d.total_calls:,}",
                "5xx / failed": f"{s.incident_failed_calls:,}",
            },
            [],
        ),
        "LLM usage and cost": (
            {"LLM calls": f"{s.llm_calls:,}", "Spend": f"${s.llm_cost:,.2f}"},
            ["mystery-model"],
        ),
        "Capacity": ({"Soonest limit": "5.0 days"}, ["max_rps"]),
        "Services": ({"Services": "3", "Owners": "2", "Dependencies": "2"}, []),
        "Gateway": ({}, [CLAIMS_UPSTREAM]),
    }


def test_every_page_loads_with_charts_and_seeded_data(dashboard: Dashboard, page: Page) -> None:
    links = page.locator('[data-testid="stSidebarNavLink"]')
    labels = [t.split("\n")[-1].strip() for t in links.all_inner_texts()]
    assert labels == list(PAGES)

    want = expected(dashboard)
    seen: dict[str, Any] = {}
    for label in PAGES:
        open_page(page, label)
        assert page.locator('[data-testid="stException"]').count() == 0, (
            label,
            page.locator('[data-testid="stException"]').all_inner_texts(),
        )
        charts = page.locator('[data-testid="stPlotlyChart"]')
        assert charts.count() >= 1, f"{label}: no Plotly chart"
        charts.first.scroll_into_view_if_needed()
        assert charts.first.locator(".js-plotly-plot").is_visible(), label
        points = page.evaluate(CHART_POINTS_JS)
        # Every chart was drawn, and at least one of the page's charts has points.
        assert all(p is not None for p in points), (label, points)
        assert any(n > 0 for trace in points for n in trace), (label, points)

        got = metrics(page)
        want_metrics, want_texts = want[label]
        for name, value in want_metrics.items():
            assert got.get(name) == value, (label, name, got)
        text = main_text(page)
        for snippet in want_texts:
            assert snippet in text, (label, snippet)
        seen[label] = points
        assert shot(page, f"{list(PAGES).index(label) + 1:02d}-{slug(label)}").stat().st_size > 0

    # The traffic page's series has one point per 12-minute bucket with traffic (two hours).
    assert max(max(t) for t in seen["Traffic explorer"]) >= 10


def test_overview_screenshot_at_1400x900(dashboard: Dashboard, page: Page) -> None:
    settle(page, "Overview")
    assert page.viewport_size == {"width": 1400, "height": 900}
    path = SCREENSHOTS / "overview-1400x900.png"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_acknowledge_an_incident_by_clicking(dashboard: Dashboard, page: Page) -> None:
    incident_id = dashboard.seeded.incident_id
    open_page(page, "Incidents")
    m = metrics(page)
    assert m["Status"] == "open", m

    ack = page.locator(".st-key-ack button")
    assert ack.is_enabled()
    ack.click()
    page.get_by_text(f"Incident {incident_id} acknowledged by {ACTOR}.").wait_for()
    settle(page, "Incidents")
    assert page.locator('[data-testid="stException"]').count() == 0
    assert metrics(page)["Status"] == "acknowledged"
    assert page.locator(".st-key-ack button").is_disabled()
    shot(page, "incident-acknowledged")

    # The CLI, a separate process, sees it at once.
    r = run_aiops("incidents", "show", str(incident_id), "--home", str(dashboard.root), "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    inc = json.loads(r.stdout)[0]
    assert inc["status"] == "acknowledged"
    assert inc["acknowledged_at"] is not None
    assert any(e["kind"] == "acknowledged" and e["actor"] == ACTOR for e in inc["events"]), inc
    rows = query_json(
        dashboard.root,
        "SELECT actor, action, source FROM audit_log WHERE target_kind = 'incident' "
        f"AND target_id = '{incident_id}' AND source = 'dashboard'",
    )
    assert len(rows) == 1 and rows[0]["actor"] == ACTOR, rows
    assert "ack" in rows[0]["action"], rows
