"""SSRF safety: non-public addresses refused after DNS resolution, on every redirect hop, and pinned for the connect."""

from __future__ import annotations

import asyncio
import ipaddress

import pytest

from extract.crawler import AddressGuard, CrawlConfig, NonPublicAddress, crawl, non_public_kind
from extract.crawler.safety import AddressAllowList


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("127.0.0.2", "loopback"),
        ("10.0.0.1", "private"),
        ("192.168.1.1", "private"),
        ("172.16.0.1", "private"),
        ("169.254.169.254", "link_local"),
        ("0.0.0.0", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("100.64.0.1", "not_global"),  # carrier-grade NAT
        ("::1", "loopback"),
        ("fe80::1", "link_local"),
        ("fc00::1", "private"),
        ("::ffff:10.0.0.1", "private (embedded in ::ffff:a00:1)"),
        ("64:ff9b::7f00:1", "loopback (embedded in 64:ff9b::7f00:1)"),
        ("2002:7f00:1::", "loopback (embedded in 2002:7f00:1::)"),
        ("8.8.8.8", None),
        ("2606:4700:4700::1111", None),
        ("::ffff:8.8.8.8", None),
    ],
)
def test_non_public_kinds(address, kind):
    assert non_public_kind(ipaddress.ip_address(address)) == kind


def test_allow_list_takes_cidrs_addresses_and_host_names():
    allow = AddressAllowList(["127.0.0.0/8", "10.1.2.3", "intranet.example"])
    assert allow.allows_address(ipaddress.ip_address("127.9.9.9"))
    assert allow.allows_address(ipaddress.ip_address("10.1.2.3"))
    assert not allow.allows_address(ipaddress.ip_address("10.1.2.4"))
    assert not allow.allows_address(ipaddress.ip_address("::1"))
    assert allow.allows_host("Intranet.Example.")


# 127.0.0.1 by name, as one number and in hex: the check runs on what the resolver returns.
@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "2130706433", "0x7f.1"])
def test_loopback_is_refused_without_allow_list(site, tmp_path, host):
    site.page("/", "secret admin page")
    result = crawl(CrawlConfig(seeds=(f"http://{host}:{site.port}/",), per_host_delay_s=0), tmp_path)
    [record] = result.records
    assert (record.outcome, record.reason) == ("skipped", "non_public_address")
    assert record.detail.startswith(f"{host}: resolves to ") and "(loopback)" in record.detail
    assert site.hits == []  # not even robots.txt was asked for


@pytest.mark.parametrize(
    "target",
    [
        "http://127.0.0.2:{port}/",
        "http://2130706434:{port}/",  # 127.0.0.2 spelled as one number
        "http://10.0.0.1/latest",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:127.0.0.1]:{port}/",  # the allow-listed address, but IPv4-mapped: not on the list
        "http://0.0.0.0:{port}/",
    ],
)
def test_redirect_to_a_non_public_address_is_refused(site, local_config, tmp_path, target):
    target = target.format(port=site.port)
    site.page("/", "", status=302, headers={"Location": site.url("/hop")})
    site.page("/hop", "", status=301, headers={"Location": target})
    # Only 127.0.0.1 is allow-listed (to reach the test server); the redirect target is not. Scope allows all
    # the targets, so only the address check can stop them.
    domains = ("127.0.0.1", "127.0.0.2", "2130706434", "10.0.0.1", "169.254.169.254", "::ffff:127.0.0.1", "0.0.0.0")
    result = crawl(local_config(allowed_domains=domains, timeout_s=2.0), tmp_path)

    [record] = result.records
    assert (record.outcome, record.reason) == ("skipped", "non_public_address"), record
    assert record.redirects == 2 and record.final_url == target
    assert [hit.path for hit in site.hits] == ["/robots.txt", "/", "/hop"]


def test_redirect_out_of_scope_is_refused(site, local_config, tmp_path):
    site.page("/", "", status=302, headers={"Location": "http://other.test/"})
    result = crawl(local_config(), tmp_path)
    [record] = result.records
    assert (record.reason, record.final_url) == ("out_of_scope", "http://other.test/")


def test_redirect_chain_is_limited(site, local_config, tmp_path):
    for n in range(5):
        site.page(f"/r{n}", "", status=302, headers={"Location": f"/r{n + 1}"})
    site.page("/r5", "end")
    result = crawl(local_config("/r0", max_redirects=3), tmp_path)
    [record] = result.records
    assert (record.reason, record.redirects) == ("too_many_redirects", 4)
    assert [hit.path for hit in site.hits if hit.path != "/robots.txt"] == ["/r0", "/r1", "/r2", "/r3"]

    result = crawl(local_config("/r0", max_redirects=5), tmp_path / "more")
    [record] = result.records
    assert (record.outcome, record.redirects, record.final_url) == ("fetched", 5, site.url("/r5"))


def test_allow_list_by_cidr_opens_the_local_server(site, tmp_path):
    site.page("/", "intranet")
    config = CrawlConfig(seeds=(site.url("/"),), allow_addresses=("127.0.0.0/8",), per_host_delay_s=0)
    assert [r.outcome for r in crawl(config, tmp_path).records] == ["fetched"]


class FlippingResolverDouble:
    """Test double for DNS (no DNS server we control runs here): a rebinding attacker's resolver, which answers
    the allow-listed test server first and an internal address afterwards."""

    def __init__(self) -> None:
        self.answers = [["127.0.0.1"], ["10.0.0.1"], ["10.0.0.1"]]
        self.calls = 0

    async def __call__(self, host: str, port: int) -> list[str]:
        self.calls += 1
        return self.answers[min(self.calls - 1, len(self.answers) - 1)]


def test_connection_is_pinned_to_the_checked_address(site, local_config, tmp_path):
    site.page("/", '<a href="/two.html">2</a>')
    site.page("/two.html", "two")
    resolver = FlippingResolverDouble()
    seed = f"http://rebind.test:{site.port}/"
    config = local_config(allowed_domains=("rebind.test",)).model_copy(update={"seeds": (seed,)})
    result = crawl(config, tmp_path, resolver=resolver)

    # robots.txt, / and /two.html all went to the address that was checked; DNS was asked once.
    assert result.outcomes() == {"fetched": 2}
    assert resolver.calls == 1
    assert [hit.path for hit in site.hits] == ["/robots.txt", "/", "/two.html"]
    assert site.hits[1].headers["Host"] == f"rebind.test:{site.port}"  # the name, not the pinned IP


def test_guard_refuses_when_any_address_is_non_public():
    async def mixed(host: str, port: int) -> list[str]:
        return ["8.8.8.8", "10.0.0.7"]

    guard = AddressGuard(resolver=mixed)
    with pytest.raises(NonPublicAddress, match="10.0.0.7"):
        asyncio.run(guard.resolve("mixed.test", 80))
