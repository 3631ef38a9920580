"""The test-wide network guard (tests/conftest.py): loopback and Unix sockets pass, anything else is refused
before a packet leaves, and the test that tried fails even when its code swallows the error."""

from __future__ import annotations

import socket
import threading

import pytest

REFUSED = "test network guard: .* refused \\(loopback only\\)"


def _listener(family: int, host: str) -> socket.socket:
    server = socket.socket(family, socket.SOCK_STREAM)
    server.bind((host, 0))
    server.listen(1)
    return server


@pytest.mark.parametrize(("family", "host"), [(socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")])
def test_loopback_connections_pass(family, host):
    try:
        server = _listener(family, host)
    except OSError:
        pytest.skip(f"no {host} on this machine")
    port = server.getsockname()[1]
    with server:
        with socket.socket(family, socket.SOCK_STREAM) as client:
            client.connect((host, port))
            assert client.getpeername()[1] == port
        with socket.create_connection((host, port), timeout=5) as client:
            assert client.getpeername()[1] == port


def test_unix_sockets_pass(tmp_path):
    path = str(tmp_path / "s")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(path)
        server.listen(1)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.connect(path)


# 10.0.0.1 and 169.254.169.254 are the crawler tests' refusal targets; a host name would need DNS, which is refused too.
@pytest.mark.parametrize(
    "address",
    [("10.0.0.1", 80), ("169.254.169.254", 80), ("8.8.8.8", 53), ("example.com", 443), ("::ffff:10.0.0.1", 80, 0, 0)],
)
def test_other_addresses_are_refused_and_recorded(address, loopback_only_network):
    family = socket.AF_INET6 if len(address) == 4 else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        with pytest.raises(OSError, match=REFUSED):
            sock.connect(address)
        with pytest.raises(OSError, match=REFUSED):
            sock.connect_ex(address)
    with pytest.raises(OSError, match=REFUSED):
        socket.create_connection(address[:2], timeout=0.1)
    assert len(loopback_only_network) == 3
    loopback_only_network.clear()  # refused on purpose here; left in, the guard would fail this test at teardown


def test_a_swallowed_refusal_in_a_thread_is_still_recorded(loopback_only_network):
    def sloppy_client() -> None:
        try:
            socket.create_connection(("10.0.0.1", 80), timeout=0.1)
        except OSError:
            pass  # code under test that hides its connection errors

    thread = threading.Thread(target=sloppy_client)
    thread.start()
    thread.join()
    assert loopback_only_network == ["('10.0.0.1', 80)"]
    loopback_only_network.clear()


def test_dns_lookups_of_other_names_are_refused_and_ip_literals_resolve_locally(loopback_only_network):
    with pytest.raises(socket.gaierror, match="DNS lookup of 'example.com' refused"):
        socket.getaddrinfo("example.com", 443)
    assert loopback_only_network == ["DNS lookup of 'example.com'"]
    loopback_only_network.clear()
    # literals need no resolver: the crawler's address guard gets them and must refuse them itself
    assert {info[4][0] for info in socket.getaddrinfo("10.0.0.1", 80, type=socket.SOCK_STREAM)} == {"10.0.0.1"}
    assert socket.getaddrinfo("localhost", 80, type=socket.SOCK_STREAM)
    assert loopback_only_network == []


def test_udp_datagrams_beyond_loopback_are_refused(loopback_only_network):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        with pytest.raises(OSError, match=REFUSED):
            sock.sendto(b"x", ("8.8.8.8", 53))
        with pytest.raises(OSError, match=REFUSED):
            sock.sendto(b"x", 0, ("10.0.0.1", 53))
        sock.bind(("127.0.0.1", 0))
        assert sock.sendto(b"x", sock.getsockname()) == 1
    assert len(loopback_only_network) == 2
    loopback_only_network.clear()
