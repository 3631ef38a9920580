"""HTTPS through the pinned transport: the connection goes to the checked IP, SNI and certificate use the name."""

from __future__ import annotations

import datetime
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from extract.crawler import CrawlConfig, crawl


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_pki(folder: Path, server_name: str) -> tuple[Path, Path, Path]:
    """A test CA and a server certificate for ``server_name`` signed by it: (ca.pem, cert.pem, key.pem)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("Reread test CA"))
        .issuer_name(_name("Reread test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(server_name))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(server_name)]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = folder / "ca.pem", folder / "cert.pem", folder / "key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return paths


class TlsSite:
    """An HTTPS server on 127.0.0.1 that records the SNI name and Host header of each request."""

    def __init__(self, cert: Path, key: Path) -> None:
        self.sni: list[str | None] = []
        self.hosts: list[str] = []
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                site.hosts.append(self.headers["Host"])
                body = b"<html><body>over tls</body></html>"
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        context.sni_callback = lambda sock, name, ctx: site.sni.append(name)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class ResolverDouble:
    """Test double for DNS: every name resolves to the local test server."""

    async def __call__(self, host: str, port: int) -> list[str]:
        return ["127.0.0.1"]


@pytest.fixture
def tls_site(tmp_path):
    ca, cert, key = _write_pki(tmp_path, "secure.test")
    site = TlsSite(cert, key)
    yield site, ca
    site.close()


def _config(port: int, host: str, ca: Path | None) -> CrawlConfig:
    return CrawlConfig(
        seeds=(f"https://{host}:{port}/",),
        allow_addresses=("127.0.0.1",),
        per_host_delay_s=0,
        retries=0,
        timeout_s=5,
        ca_bundle=ca,
    )


def test_https_uses_the_name_for_sni_and_certificate(tls_site, tmp_path):
    site, ca = tls_site
    result = crawl(_config(site.port, "secure.test", ca), tmp_path / "w", resolver=ResolverDouble())
    [record] = result.records
    assert (record.outcome, record.status) == ("fetched", 200)
    assert set(site.sni) == {"secure.test"}
    assert site.hosts[-1] == f"secure.test:{site.port}"


def test_https_certificate_for_another_name_is_refused(tls_site, tmp_path):
    site, ca = tls_site
    result = crawl(_config(site.port, "other.test", ca), tmp_path / "w", resolver=ResolverDouble())
    [record] = result.records
    # robots.txt (the first request) failed verification; the page's record says why
    assert (record.outcome, record.reason) == ("skipped", "network_error")
    assert "robots.txt" in record.detail and "CERTIFICATE_VERIFY_FAILED" in record.detail
    assert "other.test" in record.detail  # hostname mismatch: verified against the name, not 127.0.0.1
    assert site.hosts == []


def test_https_without_the_ca_is_refused(tls_site, tmp_path):
    site, _ = tls_site
    result = crawl(_config(site.port, "secure.test", None), tmp_path / "w", resolver=ResolverDouble())
    assert [r.reason for r in result.records] == ["network_error"]
    assert "CERTIFICATE_VERIFY_FAILED" in result.records[0].detail
    assert site.hosts == []
