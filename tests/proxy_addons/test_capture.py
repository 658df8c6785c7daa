from __future__ import annotations

import time
from pathlib import Path

import pyarrow.parquet as pq
from mitmproxy import http
from mitmproxy.test import taddons, tflow

from proxy_addons.capture import (
    Capture,
    _CountingStream,
    build_request_record,
    parse_traceparent,
    redact_query,
)
from suite.schema import REQUEST_COLUMN_NAMES, REQUEST_COLUMNS, records_to_arrow
from suite.spool import list_ready_segments


def as_dict(row: tuple[object, ...]) -> dict[str, object]:
    assert len(row) == len(REQUEST_COLUMNS)
    return dict(zip(REQUEST_COLUMN_NAMES, row, strict=True))


def test_redact_query_hides_secret_values_only() -> None:
    out = redact_query("api_key=abc&page=2&access_token=t0k&sig=zz&q=claims")
    assert "abc" not in out and "t0k" not in out and "zz" not in out
    assert "page=2" in out and "q=claims" in out and out.count("REDACTED") == 3


def test_parse_traceparent() -> None:
    tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    assert parse_traceparent(tp) == ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7")
    assert parse_traceparent("00-" + "0" * 32 + "-00f067aa0ba902b7-01") == (None, None)
    assert parse_traceparent("garbage") == (None, None)
    assert parse_traceparent("00-xyz92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01") == (
        None,
        None,
    )
    assert parse_traceparent(None) == (None, None)


def test_record_of_a_normal_response() -> None:
    f = tflow.tflow(resp=True)
    f.request.method = "POST"
    f.request.content = b'{"claim": 1}'
    f.request.headers["traceparent"] = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    f.request.headers["authorization"] = "Bearer sk-secret"
    f.request.headers["user-agent"] = "pytest"
    f.metadata.update(
        aiops_route="claims-api", aiops_upstream="http://up:1",
        aiops_client_path="/claims/1?api_key=k&x=1", aiops_client_host="gw:8080",
    )  # fmt: skip
    f.response.content = b"x" * 42
    f.response.status_code = 201
    row = as_dict(build_request_record(f, False, "gX", 7))
    assert row["id"] == "gX-7" and row["gateway_id"] == "gX"
    assert row["route"] == "claims-api" and row["upstream"] == "http://up:1"
    assert (row["method"], row["host"], row["path"]) == ("POST", "gw:8080", "/claims/1")
    assert row["query"] == "api_key=REDACTED&x=1"
    assert (row["status"], row["error"]) == (201, None)
    assert (row["request_bytes"], row["response_bytes"]) == (12, 42)
    assert row["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert row["kind"] == "http" and row["streamed"] is False
    assert row["user_agent"] == "pytest"
    assert isinstance(row["duration_ms"], float) and isinstance(row["ttfb_ms"], float)
    assert "sk-secret" not in repr(row)
    # and it converts to the spool schema
    assert records_to_arrow([tuple(row.values())]).num_rows == 1


def test_record_of_an_unreachable_upstream() -> None:
    f = tflow.tflow(err=True)
    f.server_conn.timestamp_tcp_setup = None
    f.metadata.update(
        aiops_route="r", aiops_error="upstream_unreachable",
        aiops_error_detail="Connect call failed", aiops_error_body=b'{"error": {}}',
    )  # fmt: skip
    row = as_dict(build_request_record(f, True, "g", 1))
    assert (row["status"], row["error"], row["error_detail"]) == (
        502,
        "upstream_unreachable",
        "Connect call failed",
    )
    assert row["response_bytes"] == len(b'{"error": {}}')


def test_record_of_a_client_that_left_mid_stream() -> None:
    f = tflow.tflow(resp=True, err=True)
    f.error.msg = "Client disconnected."
    counter = _CountingStream(None)
    counter(b"abc")
    f.metadata.update(aiops_headers_sent=True, aiops_stream_counter=counter)
    row = as_dict(build_request_record(f, True, "g", 1))
    assert (row["status"], row["error"], row["response_bytes"], row["streamed"]) == (
        200,
        "client_disconnected",
        3,
        True,
    )


def test_record_of_a_client_that_left_before_any_response() -> None:
    f = tflow.tflow(err=True)
    f.error.msg = "Client disconnected."
    row = as_dict(build_request_record(f, True, "g", 1))
    assert (row["status"], row["error"]) == (None, "client_disconnected")


def test_other_addons_fill_columns_through_metadata() -> None:
    f = tflow.tflow(resp=True)
    f.metadata["aiops_fields"] = {"kind": "llm", "llm_model": "gpt-x", "prompt_tokens": 12}
    row = as_dict(build_request_record(f, False, "g", 1))
    assert (row["kind"], row["llm_model"], row["prompt_tokens"]) == ("llm", "gpt-x", 12)


def test_responses_without_length_are_streamed_and_counted() -> None:
    cap = Capture()
    f = tflow.tflow(resp=True)
    del f.response.headers["content-length"]
    cap.responseheaders(f)
    assert callable(f.response.stream)
    assert f.response.stream(b"hello") == b"hello"
    assert f.response.stream(b"") == b""
    assert f.metadata["aiops_stream_counter"].n == 5
    small = tflow.tflow(resp=True)
    small.response.headers["content-length"] = "10"
    cap.responseheaders(small)
    assert not small.response.stream


def test_stream_set_by_another_addon_is_wrapped_not_replaced() -> None:
    cap = Capture()
    f = tflow.tflow(resp=True)
    f.response.stream = lambda data: [data, data]
    cap.responseheaders(f)
    assert f.response.stream(b"ab") == [b"ab", b"ab"]
    assert f.metadata["aiops_stream_counter"].n == 4


async def test_capture_writes_one_row_per_flow_to_the_spool(tmp_path: Path) -> None:
    cap = Capture()
    with taddons.context(cap) as tctx:
        tctx.configure(cap, aiops_home=str(tmp_path), aiops_flush_interval=60.0)
        cap.running()
        ok = tflow.tflow(resp=True)
        cap.response(ok)
        cap.error(ok)  # a flow is recorded once, whatever else happens to it
        bad = tflow.tflow(err=True)
        cap.error(bad)
        refused = tflow.tflow()
        refused.response = http.Response.make(404, b"{}")
        refused.response.timestamp_start = refused.response.timestamp_end = time.time()
        cap.response(refused)
        cap.done()
    segments = list_ready_segments(tmp_path / "spool")
    assert len(segments) == 1
    table = pq.read_table(segments[0])
    assert table.num_rows == 3
    assert table.column("status").to_pylist() == [200, 502, 404]
    assert len(set(table.column("id").to_pylist())) == 3
    status_files = list((tmp_path / "run").glob("gateway-*.json"))
    assert len(status_files) == 1 and '"written": 3' in status_files[0].read_text()
