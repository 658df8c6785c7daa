"""Policy overhead: gateway throughput with keys, rate limits and a model alias active,
against the same gateway with capture only, same upstream and client, in one run.

Two configurations, alternated over several rounds (a, b, a, b, ...), each a fresh
`aiops gateway` process with its own home in front of one LLM emulator
(by default the LLM emulator, non-streamed chat completions with real usage;
`--upstream rest --no-alias` puts the faster REST emulator behind the route, which
answers the chat calls with plain 200 JSON, so that the gateway is the bottleneck):

  a  capture   route `llm` with no auth and no limits; clients send model "gpt-4o-mini"
  b  policy    the same route with auth = "key", route rpm/tpm, a provider key injected,
               a gateway key (rpm, tpm, daily and monthly budget) on every request, and
               clients sending the alias "claims-summarizer" -> "llm:gpt-4o-mini"
               ([[llm_aliases]]); the limits are high enough never to refuse

The load client is bench/gateway_overhead.py's (C keep-alive HTTP/1.1 connections, raw
asyncio streams), sending a POST with a JSON body. Reported: medians over the rounds of
requests/s, p50 and p99 (ms), and the ratio b/a (target >= 0.90). Any non-2xx answer in
(b) is reported: a refusal would make the comparison meaningless.

Usage: .venv/bin/python bench/policy_overhead.py [--seconds 8] [--rounds 3]
       [--concurrency 16] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve()
BIN = Path(sys.executable).parent
AIOPS = str(BIN / "aiops")
ALIAS = "claims-summarizer"
TARGET_RATIO = 0.90
PROVIDER_ENV = "BENCH_PROVIDER_KEY"
HIGH = 1_000_000_000  # limits that never refuse


def _overhead_module():  # type: ignore[no-untyped-def]
    """bench/gateway_overhead.py, for its load client and process helpers."""
    spec = importlib.util.spec_from_file_location(
        "gateway_overhead", HERE.with_name("gateway_overhead.py")
    )
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["gateway_overhead"] = mod
    spec.loader.exec_module(mod)
    return mod


go = _overhead_module()


# -- load client (a separate process) ------------------------------------------------------
async def _run_client(
    host: str, port: int, request: bytes, seconds: float, warmup: float, concurrency: int
) -> dict[str, object]:
    st = go._Stats()
    start = time.perf_counter()
    warm_end, deadline = start + warmup, start + warmup + seconds
    tasks = [
        asyncio.create_task(go._conn_worker(host, port, request, warm_end, deadline, st))
        for _ in range(concurrency)
    ]
    _done, pending = await asyncio.wait(tasks, timeout=deadline - time.perf_counter() + 15)
    for t in pending:
        t.cancel()
    lat = sorted(st.lat)
    n = len(lat)

    def pct(q: float) -> float | None:
        return lat[min(n - 1, int(q * n))] * 1000 if n else None

    return {"sent": st.sent, "ok": st.ok, "bad_status": st.bad_status, "failed": st.failed,
            "rps": n / seconds, "p50_ms": pct(0.50), "p99_ms": pct(0.99)}  # fmt: skip


def client_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="policy_overhead.py --client")
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("--model", required=True)
    p.add_argument("--key", default="")
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--concurrency", type=int, default=16)
    a = p.parse_args(argv)
    body = json.dumps(
        {"model": a.model, "messages": [{"role": "user", "content": "Summarise claim 42 now"}]}
    ).encode()
    auth = f"Authorization: Bearer {a.key}\r\n" if a.key else ""
    request = (
        f"POST /llm/v1/chat/completions HTTP/1.1\r\nHost: {a.host}:{a.port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n{auth}\r\n"
    ).encode() + body
    result = asyncio.run(_run_client(a.host, a.port, request, a.seconds, a.warmup, a.concurrency))
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


# -- orchestration ---------------------------------------------------------------------------
def write_config(path: Path, upstream: str, policy: bool, alias: bool = True) -> None:
    route = (
        '[[routes]]\nname = "llm"\nprefix = "/llm"\nstrip_prefix = true\n'
        f'upstreams = ["{upstream}"]\nllm_provider = "openai"\n'
    )
    if policy:
        route += f'auth = "key"\nrpm = {HIGH}\ntpm = {HIGH}\nprovider_key = "${{{PROVIDER_ENV}}}"\n'
        if alias:
            route += f'\n[[llm_aliases]]\nname = "{ALIAS}"\ntargets = ["llm:gpt-4o-mini"]\n'
    path.write_text(f"# written by bench/policy_overhead.py\n{route}")


def create_key(home: Path) -> str:
    out = subprocess.run(
        [AIOPS, "keys", "create", "--home", str(home), "--tenant", "bench",
         "--rpm", str(HIGH), "--tpm", str(HIGH), "--budget-usd-day", "1000000",
         "--budget-usd-month", "1000000"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    if out.returncode != 0:
        raise RuntimeError(f"aiops keys create failed:\n{out.stderr}")
    return out.stdout.strip()


def run_round(cfg: str, work: Path, args: argparse.Namespace, key: str) -> dict[str, object]:
    home = work / f"home-{cfg}"
    port = go.free_port()
    proc = go.Proc(
        f"gateway ({cfg})",
        [AIOPS, "gateway", "--home", str(home), "--config", str(work / f"{cfg}.toml"),
         "--listen-port", str(port)],
    )  # fmt: skip
    try:
        proc.wait_for(r"aiops gateway listening on")
        go.wait_listening(port, proc)
        time.sleep(0.3)
        argv = [sys.executable, str(HERE), "--client", "127.0.0.1", str(port),
                "--model", ALIAS if cfg == "policy" and not args.no_alias else "gpt-4o-mini",
                "--seconds", str(args.seconds), "--warmup", str(args.warmup),
                "--concurrency", str(args.concurrency)]  # fmt: skip
        if cfg == "policy":
            argv += ["--key", key]
        out = subprocess.run(argv, capture_output=True, text=True, timeout=args.seconds + 90)
        if out.returncode != 0:
            raise RuntimeError(f"load client failed:\n{out.stderr}")
        res: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    finally:
        proc.stop()
    res["config"] = cfg
    return res


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--client"]:
        return client_main(argv[1:])
    p = argparse.ArgumentParser(
        description=__doc__.rsplit("\nUsage:", 1)[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--seconds", type=float, default=8.0, help="measured seconds per run")
    p.add_argument("--rounds", type=int, default=3, help="rounds of (a, b)")
    p.add_argument("--concurrency", type=int, default=16, help="keep-alive connections")
    p.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds per run")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.add_argument(
        "--upstream",
        choices=("rest", "llm"),
        default="llm",
        help="llm (default): the LLM emulator (real usage); rest: the faster REST emulator "
        "answers the chat calls (200 JSON, no usage), so the gateway is the bottleneck",
    )
    p.add_argument(
        "--no-alias", action="store_true", help="(b) without the alias: keys and limits only"
    )
    args = p.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="aiops-bench-policy-"))
    os.environ[PROVIDER_ENV] = "sk-bench-provider-key"
    module = "suite.emulators.llm" if args.upstream == "llm" else "suite.emulators.rest_upstream"
    emu = go.Proc(f"{args.upstream} emulator", [sys.executable, "-m", module, "--port", "0"])
    try:
        upstream = emu.wait_for(r"emulator listening on (http://\S+)").group(1)
        write_config(work / "capture.toml", upstream, policy=False)
        write_config(work / "policy.toml", upstream, policy=True, alias=not args.no_alias)
        key = create_key(work / "home-policy")
        rounds = []
        for rnd in range(1, args.rounds + 1):
            for cfg in ("capture", "policy"):
                r = run_round(cfg, work, args, key)
                rounds.append(r)
                go.log(
                    f"  round {rnd} {cfg:8s} {r['rps']:8,.0f} req/s  p50 {go.fmt(r['p50_ms'], '.2f')}"
                    f" ms  p99 {go.fmt(r['p99_ms'], '.2f')} ms  non-2xx {r['bad_status']}"
                    f"  failed {r['failed']}"
                )
    finally:
        emu.stop()
    summary: dict[str, object] = {}
    for cfg in ("capture", "policy"):
        rs = [r for r in rounds if r["config"] == cfg]
        summary[cfg] = {
            "rps": go.median([r["rps"] for r in rs]),
            "p50_ms": go.median([r["p50_ms"] for r in rs]),
            "p99_ms": go.median([r["p99_ms"] for r in rs]),
            "non_2xx": sum(int(r["bad_status"]) for r in rs),
            "failed": sum(int(r["failed"]) for r in rs),
        }
    cap, pol = summary["capture"], summary["policy"]
    assert isinstance(cap, dict) and isinstance(pol, dict)
    ratio = pol["rps"] / cap["rps"] if cap["rps"] else None
    summary["ratio"] = ratio
    summary["target_ratio"] = TARGET_RATIO
    summary["alias_active"] = not args.no_alias
    if args.json:
        print(json.dumps(summary))
        return 0
    print(
        f"policy overhead (medians over {args.rounds} rounds; same {args.upstream} emulator "
        f"and load client; alias {'on' if not args.no_alias else 'off'})"
    )
    for cfg in ("capture", "policy"):
        s = summary[cfg]
        assert isinstance(s, dict)
        print(
            f"  {cfg:8s} {s['rps']:8,.0f} req/s  p50 {go.fmt(s['p50_ms'], '.2f')} ms  "
            f"p99 {go.fmt(s['p99_ms'], '.2f')} ms  non-2xx {s['non_2xx']}  failed {s['failed']}"
        )
    ok = ratio is not None and ratio >= TARGET_RATIO and not pol["non_2xx"]
    print(
        f"  ratio policy/capture: {ratio:.2f} (target >= {TARGET_RATIO:.2f}) "
        f"{'OK' if ok else 'BELOW TARGET' if pol['non_2xx'] == 0 else 'INVALID: refusals'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
