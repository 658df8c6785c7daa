"""Regular (forward proxy) mode: an HTTPS client goes through `aiops gateway --mode regular`
(trusting the gateway's CA) to a self-signed HTTPS upstream the gateway trusts through
`gateway.upstream_ca_file`; the call is recorded with its route and scheme."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.conftest import write_config
from tests.integration.helpers import query_json, run_worker_once, stop_and_close
from tests.procs import Proc, start_gateway

pytestmark = pytest.mark.integration


def make_self_signed(directory: Path, name: str) -> tuple[Path, Path]:
    """A self-signed certificate for localhost and 127.0.0.1 (its own trust anchor)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=7))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )  # fmt: skip
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path = directory / f"{name}-cert.pem"
    key_path = directory / f"{name}-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        body = json.dumps(
            {"served_by": self.server.label, "path": self.path}  # type: ignore[attr-defined]
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@dataclass
class HttpsUpstream:
    port: int
    cert: Path
    label: str


@pytest.fixture
def https_upstreams(tmp_path: Path) -> Iterator[tuple[HttpsUpstream, HttpsUpstream]]:
    """Two HTTPS servers on loopback, each with its own self-signed certificate."""
    servers = []
    threads = []
    made = []
    for label in ("trusted", "untrusted"):
        cert, key = make_self_signed(tmp_path, label)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        server.daemon_threads = True
        server.label = label  # type: ignore[attr-defined]
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
        t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1})
        t.start()
        servers.append(server)
        threads.append(t)
        made.append(HttpsUpstream(server.server_address[1], cert, label))
    try:
        yield made[0], made[1]
    finally:
        for server, t in zip(servers, threads, strict=True):
            server.shutdown()
            t.join(10)
            server.server_close()


def test_regular_mode_https_upstream(
    tmp_path: Path,
    home: Path,
    procs: list[Proc],
    https_upstreams: tuple[HttpsUpstream, HttpsUpstream],
):
    trusted, untrusted = https_upstreams
    config = write_config(
        tmp_path / "gateway.toml",
        f"""
[gateway]
upstream_ca_file = "{trusted.cert}"
flush_interval_seconds = 0.2

[[routes]]
name = "secure-api"
prefix = "/"
upstreams = ["https://localhost:{trusted.port}"]
""",
    )
    gw, proxy_url = start_gateway(home, config, "--mode", "regular")
    procs.append(gw)
    m = gw.wait_for(r"CA certificate for HTTPS_PROXY clients: (\S+)")
    ca = Path(m.group(1))
    assert ca == home.resolve() / "certs" / "mitmproxy-ca-cert.pem"
    assert ca.is_file()
    assert "regular mode" in gw.output

    client_ctx = ssl.create_default_context(cafile=str(ca))
    with httpx.Client(proxy=proxy_url, verify=client_ctx, trust_env=False, timeout=30) as client:
        r = client.get(f"https://localhost:{trusted.port}/x?n=1")
        assert r.status_code == 200, r.text
        assert r.json() == {"served_by": "trusted", "path": "/x?n=1"}
        # The client really talked TLS to the gateway's interception certificate.
        assert r.extensions["http_version"] == b"HTTP/1.1"

        # An upstream whose certificate is not in upstream_ca_file is refused: the gateway
        # verifies upstream certificates rather than trusting anything.
        bad = client.get(f"https://localhost:{untrusted.port}/y?n=2")
        assert bad.status_code == 502, bad.text

    # Without the gateway's CA the client must refuse the interception certificate.
    with httpx.Client(proxy=proxy_url, trust_env=False, timeout=30) as plain:
        with pytest.raises(httpx.ConnectError):
            plain.get(f"https://localhost:{trusted.port}/z?n=3")

    assert stop_and_close(gw) == 0, gw.output
    run_worker_once(home)
    rows = query_json(
        home,
        "SELECT route, status, scheme, method, host, path, query, upstream, error "
        "FROM requests ORDER BY query",
    )
    ok = [r for r in rows if r["query"] == "n=1"]
    assert ok == [
        {
            "route": "secure-api",
            "status": 200,
            "scheme": "https",
            "method": "GET",
            "host": f"localhost:{trusted.port}",
            "path": "/x",
            "query": "n=1",
            "upstream": f"https://localhost:{trusted.port}",
            "error": None,
        }
    ], rows
    refused = [r for r in rows if r["query"] == "n=2"]
    assert len(refused) == 1, rows
    assert refused[0]["status"] == 502
    assert refused[0]["route"] is None  # not a configured upstream
    assert refused[0]["error"] == "upstream_tls_error"
