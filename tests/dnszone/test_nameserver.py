"""The test DNS server (testkit/harness/nameserver.py): real nsd answers, set_zone, stop."""

from __future__ import annotations

from pathlib import Path

import dns.exception
import dns.resolver
import pytest
from harness.nameserver import NameServer

pytestmark = pytest.mark.stack

# Not the default address, so that other tests' name servers may run meanwhile.
ADDRESS = "127.53.0.2"

ZONE = """\
relay.example.  A      192.0.2.10
relay.example.  MX     10 relay.example.
long.relay.example. TXT "%s" "tail"
""" % ("x" * 255)


def resolver(server: NameServer) -> dns.resolver.Resolver:
    res = dns.resolver.Resolver(configure=False)
    res.nameservers = [server.address]
    res.port = server.port
    res.lifetime = 2.0
    res.cache = None
    return res


def test_serves_the_zone_text_then_a_changed_one_then_nothing(tmp_path):
    with NameServer(tmp_path, ADDRESS, {"relay.example.": ZONE}) as server:
        res = resolver(server)
        assert [r.to_text() for r in res.resolve("relay.example.", "A")] == ["192.0.2.10"]
        assert [r.to_text() for r in res.resolve("relay.example", "MX")] == ["10 relay.example."]
        (txt,) = res.resolve("long.relay.example.", "TXT")
        assert txt.strings == (b"x" * 255, b"tail")
        assert res.resolve("relay.example.", "SOA").rrset.ttl > 0
        with pytest.raises(dns.resolver.NXDOMAIN):
            res.resolve("absent.relay.example.", "A")

        server.set_zone("relay.example", "relay.example. A 192.0.2.11\n")
        assert [r.to_text() for r in res.resolve("relay.example.", "A")] == ["192.0.2.11"]
        with pytest.raises(dns.resolver.NoAnswer):
            res.resolve("relay.example.", "MX")

        server.set_zone("other.example", "other.example. A 192.0.2.20\n")
        assert [r.to_text() for r in res.resolve("other.example.", "A")] == ["192.0.2.20"]
        assert [r.to_text() for r in res.resolve("relay.example.", "A")] == ["192.0.2.11"]

        server.stop()
        assert not server.running
        with pytest.raises(dns.exception.DNSException) as failure:
            res.resolve("relay.example.", "A")
        assert isinstance(failure.value, dns.resolver.LifetimeTimeout | dns.resolver.NoNameservers)
    assert "zone relay.example read with success" in server.output()


def test_a_zone_that_does_not_load_is_refused_and_the_old_one_stays(tmp_path):
    with NameServer(tmp_path, ADDRESS, zones={"relay.example": ZONE}) as server:
        with pytest.raises(ValueError, match="longer than 255"):
            server.set_zone("relay.example", 'relay.example. TXT "%s"\n' % ("y" * 256))
        assert [r.to_text() for r in resolver(server).resolve("relay.example.", "A")] == [
            "192.0.2.10"
        ]


def test_only_loopback_addresses():
    with pytest.raises(ValueError, match="loopback"):
        NameServer(Path("/nonexistent"), address="192.0.2.1")
