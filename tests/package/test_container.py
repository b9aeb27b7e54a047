"""The container harness: its parsers and keys (pure), and one boot and halt (root)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from harness.container import (
    CGROUP_ROOTS,
    DEFAULT_MIRROR,
    RootSpec,
    _source_entries,
    booted,
    host_mirrors,
    root_tarball,
    sources_list,
)
from hypothesis import given
from hypothesis import strategies as st
from package.test_systemd import root_spec

SUITE = st.sampled_from(["bookworm", "trixie", "bookworm-updates", "trixie-security", "sid"])
URI = st.sampled_from(
    ["http://deb.debian.org/debian", "https://mirror.example/debian/", "http://x.example/dist"]
)
ENTRY = st.tuples(URI, SUITE)


def _one_line(entries: list[tuple[str, str]]) -> str:
    return "".join(f"# a comment\ndeb [arch=amd64] {uri} {suite} main\n" for uri, suite in entries)


def _deb822(entries: list[tuple[str, str]]) -> str:
    return "\n".join(
        f"Types: deb\n# {uri}\nURIs: {uri}\nSuites: {suite}\nComponents: main\n"
        for uri, suite in entries
    )


@given(st.lists(ENTRY, max_size=6), st.booleans())
def test_source_entries_reads_both_formats(entries, deb822):
    text = _deb822(entries) if deb822 else _one_line(entries)
    assert sorted(_source_entries(text)) == sorted(entries)


@given(st.text(max_size=300))
def test_source_entries_never_fails_on_junk(text):
    for uri, suite in _source_entries(text):
        assert uri and suite


def test_source_entries_skips_deb_src_and_other_types():
    text = "deb-src http://a.example/debian bookworm main\n\nTypes: deb-src\nURIs: x\nSuites: y\n"
    assert list(_source_entries(text)) == []


def test_host_mirrors_picks_debian_and_security_not_third_party(tmp_path):
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list").write_text(
        "deb https://packages.example.com/apt cloud-sdk-bookworm main\n"
    )
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.example/debian/\nSuites: bookworm bookworm-updates\n\n"
        "Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\n"
    )
    (tmp_path / "sources.list.d" / "node.sources").write_text(
        "Types: deb\nURIs: https://deb.nodesource.example/node\nSuites: nodistro\n"
    )
    mirrors = host_mirrors(tmp_path)
    assert mirrors == ("http://mirror.example/debian", "http://mirror.example/debian-security")
    assert sources_list("trixie", mirrors).splitlines() == [
        "deb http://mirror.example/debian trixie main",
        "deb http://mirror.example/debian trixie-updates main",
        "deb http://mirror.example/debian-security trixie-security main",
    ]


def test_host_mirrors_without_sources_uses_debians_default(tmp_path):
    assert host_mirrors(tmp_path) == (DEFAULT_MIRROR, None)


def test_root_key_follows_release_packages_and_mirror_not_order():
    mirrors = (DEFAULT_MIRROR, None)
    base = RootSpec("bookworm", download=("postfix", "nginx"))
    assert base.key(mirrors) == RootSpec("bookworm", download=("nginx", "postfix")).key(mirrors)
    others = [
        RootSpec("trixie", download=("postfix", "nginx")),
        RootSpec("bookworm", download=("postfix",)),
        RootSpec("bookworm", include=("systemd", "python3"), download=("postfix", "nginx")),
    ]
    assert len({base.key(mirrors), *(spec.key(mirrors) for spec in others)}) == 4
    assert base.key(mirrors) != base.key(("http://other.example/debian", None))


@pytest.mark.package
def test_a_container_boots_runs_commands_and_leaves_nothing_behind(tmp_path):
    assert os.geteuid() == 0, "containers need root"
    tarball = root_tarball(root_spec())  # the package tests' root: one cached tarball
    with booted(tarball, tmp_path) as ct:
        name, root = ct.name, ct.root
        assert ct.state() == "running"
        assert ct.check(["cat", "/proc/1/comm"]).strip() == "systemd"
        # its own network: only lo
        assert ct.check(["ls", "/sys/class/net"]).split() == ["lo"]
        # its own machine id, not the one in the tarball (empty)
        assert len(ct.check(["cat", "/etc/machine-id"]).strip()) == 32
        ct.path("/root/probe").write_text("in\n")
        assert ct.check(["cat", "/root/probe"]) == "in\n"
        assert ct.boot_seconds < 60
    assert not root.exists()
    for base in CGROUP_ROOTS:
        assert not (base / name).exists()
    assert not Path(f"/run/systemd/nspawn/{name}").exists()
