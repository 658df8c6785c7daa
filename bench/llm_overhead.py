"""LLM streaming overhead: time to first token and total time of streamed chat calls,
straight to the LLM emulator and through `aiops gateway`, measured in one run.

Bare `mitmdump` (reverse mode, no scripts, `stream_large_bodies=1` so that it streams
instead of buffering the whole answer) on the same emulator is measured too, as the floor
any mitmproxy-based gateway stands on. Calls alternate (direct, mitmdump, gateway,
direct, ...) so drift on this 2-core machine hits both
alike. TTFT is the time from sending the request to the first SSE event carrying content;
total is the time to the end of the stream. Reported: p50/p95 of each and the TTFT the
gateway adds at p50 (target: under 3 ms), plus the rows the gateway recorded.

Usage: .venv/bin/python bench/llm_overhead.py [--calls 200] [--tokens 20]
       [--token-interval-ms 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

BIN = Path(sys.executable).parent
AIOPS = str(BIN / "aiops")


def start(argv: list[str], banner: str, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    fh = open(log, "wb")  # noqa: SIM115 - the child owns it
    p = subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        m = re.search(banner, log.read_text(errors="replace"))
        if m:
            return p, m.group(1)
        if p.poll() is not None:
            raise SystemExit(f"{argv[:3]} exited early:\n{log.read_text()}")
        time.sleep(0.05)
    raise SystemExit(f"{argv[:3]} did not start:\n{log.read_text()}")


def stream_once(client: httpx.Client, url: str, body: dict[str, object]) -> tuple[float, float]:
    """(ttft_ms, total_ms) of one streamed chat completion."""
    t0 = time.perf_counter()
    ttft = None
    with client.stream("POST", url, json=body) as r:
        r.raise_for_status()
        for line in r.iter_lines():
            if ttft is None and line.startswith("data: {") and '"content"' in line:
                delta = json.loads(line[6:])["choices"]
                if delta and delta[0].get("delta", {}).get("content"):
                    ttft = time.perf_counter() - t0
    total = time.perf_counter() - t0
    return (ttft if ttft is not None else total) * 1000, total * 1000


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--calls", type=int, default=200, help="streamed calls per configuration")
    ap.add_argument("--tokens", type=int, default=20, help="tokens per answer (max_tokens)")
    ap.add_argument(
        "--token-interval-ms", type=int, default=5, help="emulator delay between tokens"
    )
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="aiops-llm-bench-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        emu, upstream = start(
            [sys.executable, "-m", "suite.emulators.llm", "--port", "0", "--token-interval-ms", str(args.token_interval_ms)],
            r"llm emulator listening on (http://\S+)", work / "llm.log",
        )  # fmt: skip
        procs.append(emu)
        home = work / "home"
        cfg = work / "gateway.toml"
        cfg.write_text(
            f'[[routes]]\nname = "openai"\nprefix = "/openai"\nstrip_prefix = true\n'
            f'upstreams = ["{upstream}"]\nllm_provider = "openai"\n'
        )
        gw, base = start(
            [AIOPS, "gateway", "--home", str(home), "--config", str(cfg), "--listen-port", "0"],
            r"aiops gateway listening on (http://\S+)", work / "gateway.log",
        )  # fmt: skip
        procs.append(gw)
        md, md_base = start(
            [str(BIN / "mitmdump"), "--mode", f"reverse:{upstream}", "--listen-host", "127.0.0.1", "-p", "0",
             "--set", "flow_detail=0", "--set", "stream_large_bodies=1"],
            r"listening at (?:\*|127\.0\.0\.1):(\d+)", work / "mitmdump.log",
        )  # fmt: skip
        procs.append(md)
        body = {
            "model": "gpt-4o-mini", "stream": True, "max_tokens": args.tokens,
            "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": "Summarise claim CLM-2024-000123 for the adjuster."}],
        }  # fmt: skip
        urls = {
            "direct": f"{upstream}/v1/chat/completions",
            "mitmdump": f"http://127.0.0.1:{md_base}/v1/chat/completions",
            "gateway": f"{base}/openai/v1/chat/completions",
        }
        results: dict[str, dict[str, list[float]]] = {k: {"ttft": [], "total": []} for k in urls}
        with httpx.Client(timeout=60) as client:
            for url in urls.values():  # warm-up, not measured
                for _ in range(10):
                    stream_once(client, url, body)
            for _ in range(args.calls):
                for name, url in urls.items():
                    ttft, total = stream_once(client, url, body)
                    results[name]["ttft"].append(ttft)
                    results[name]["total"].append(total)
        gw.send_signal(2)
        gw.wait(30)
        subprocess.run(
            [AIOPS, "worker", "--once", "--home", str(home)], check=True, capture_output=True
        )
        q = subprocess.run(
            [AIOPS, "query", "--home", str(home), "--format", "json",
             "SELECT count(*) AS n, count(*) FILTER (WHERE usage_source = 'provider') AS exact FROM requests"],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        recorded = json.loads(q.stdout)[0]
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.terminate()
                p.wait(10)
        shutil.rmtree(work, ignore_errors=True)

    sent_via_gateway = args.calls + 10
    summary = {
        name: {
            "ttft_p50_ms": statistics.median(r["ttft"]), "ttft_p95_ms": pct(r["ttft"], 0.95),
            "total_p50_ms": statistics.median(r["total"]), "total_p95_ms": pct(r["total"], 0.95),
        }
        for name, r in results.items()
    }  # fmt: skip
    added = summary["gateway"]["ttft_p50_ms"] - summary["direct"]["ttft_p50_ms"]
    out = {
        "calls_per_config": args.calls, "tokens": args.tokens, "token_interval_ms": args.token_interval_ms,
        **summary, "added_ttft_p50_ms": added,
        "mitmdump_added_ttft_p50_ms": summary["mitmdump"]["ttft_p50_ms"] - summary["direct"]["ttft_p50_ms"], "target_added_ttft_p50_ms": 3.0, "target_met": added < 3.0,
        "gateway_calls_sent": sent_via_gateway, "gateway_rows_recorded": recorded["n"],
        "rows_with_provider_usage": recorded["exact"],
    }  # fmt: skip
    if args.json:
        print(json.dumps(out))
        return 0
    console = Console()
    t = Table(
        title=f"streamed chat, {args.tokens} tokens, {args.token_interval_ms} ms apart, {args.calls} calls each"
    )
    for col in ("", "TTFT p50 ms", "TTFT p95 ms", "total p50 ms", "total p95 ms"):
        t.add_column(col, justify="right")
    for name, s in summary.items():
        t.add_row(
            name,
            *(
                f"{s[k]:.2f}"
                for k in ("ttft_p50_ms", "ttft_p95_ms", "total_p50_ms", "total_p95_ms")
            ),
        )
    console.print(t)
    verdict = "[green]met[/]" if added < 3.0 else "[red]not met[/]"
    floor = summary["mitmdump"]["ttft_p50_ms"] - summary["direct"]["ttft_p50_ms"]
    console.print(
        f"TTFT added by bare mitmdump at p50: {floor:.2f} ms (the floor of any mitmproxy gateway)"
    )
    console.print(f"TTFT added by the gateway at p50: {added:.2f} ms (target < 3 ms: {verdict}); "
                  f"ratio gateway/direct TTFT p50: {summary['gateway']['ttft_p50_ms'] / summary['direct']['ttft_p50_ms']:.2f}")  # fmt: skip
    console.print(f"rows recorded: {recorded['n']} of {sent_via_gateway} calls through the gateway "
                  f"({recorded['exact']} with provider-reported usage)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
