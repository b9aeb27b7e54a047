"""OpenPGP packet walk and armor: examples plus hypothesis-generated streams and armors."""

from __future__ import annotations

import base64
import contextlib

import pytest
from chatmail_services.milter import openpgp
from chatmail_services.milter.openpgp import NotEncrypted, check_armored, check_packets
from hypothesis import given
from hypothesis import strategies as st

VALID_VERSIONS = {1: (3, 6), 3: (4, 6), 18: (1, 2)}
TAGS = [1, 3, 18, 0, 2, 8, 9, 10, 11, 20, 21, 60]


def test_crc24_matches_the_bitwise_reference(build):
    assert openpgp.crc24(b"") == 0xB704CE
    assert openpgp.crc24(b"hello world") == build.crc24(b"hello world")


@given(st.binary(max_size=300))
def test_crc24_table_equals_bitwise(build, data):
    assert openpgp.crc24(data) == build.crc24(data)


def test_minimal_streams(build):
    pkesk, seipd = b"\x03" + b"k" * 20, b"\x01" + b"c" * 30
    good = build.encode_new(1, pkesk) + pkesk + build.encode_new(18, seipd) + seipd
    assert check_packets(good) == [1, 18]
    legacy = build.encode_legacy(1, pkesk, 4) + pkesk + build.encode_new(18, seipd, "5") + seipd
    assert check_packets(legacy) == [1, 18]
    for bad in (b"", good[:-1], good + b"\x00", good[len(pkesk) + 2 :], b"\x00" + good):
        with pytest.raises(NotEncrypted):
            check_packets(bad)


def test_partial_lengths_only_on_seipd(build):
    pkesk, seipd = b"\x06" + b"k" * 40, b"\x02" + b"c" * 3000
    good = build.encode_new(1, pkesk) + pkesk + build.encode_partial(18, seipd, 9)
    assert good[len(pkesk) + 3] == 224 + 9
    assert check_packets(good) == [1, 18]
    with pytest.raises(NotEncrypted, match="partial"):
        check_packets(build.encode_partial(1, pkesk, 2) + build.encode_new(18, seipd) + seipd)


@st.composite
def packet_streams(draw):
    """(bytes, should_accept) for a random packet list with random header encodings."""
    well_formed = draw(st.booleans())  # half the cases start from a valid packet list
    if well_formed:
        tags = [*draw(st.lists(st.sampled_from([1, 3]), min_size=1, max_size=3)), 18]
    else:
        tags = draw(st.lists(st.sampled_from(TAGS), min_size=1, max_size=4))
    out = b""
    ok = True
    for tag in tags:
        version_ok = well_formed or draw(st.booleans())
        if tag in VALID_VERSIONS and version_ok:
            version = draw(st.sampled_from(VALID_VERSIONS[tag]))
        else:
            version = draw(st.integers(0, 255))
        size = draw(st.integers(1 if well_formed else 0, 300))
        body = (bytes([version]) + draw(st.binary(min_size=size, max_size=size)))[: size or 0]
        if size == 0 or version not in VALID_VERSIONS.get(tag, ()):
            ok = False
        style = draw(st.sampled_from(["new", "new5", "legacy1", "legacy2", "legacy4", "partial"]))
        if style.startswith("legacy") and tag >= 16:
            style = "new"
        if style == "new":
            header = bytes([0xC0 | tag]) + _new_len(len(body))
            out += header + body
        elif style == "new5":
            out += bytes([0xC0 | tag]) + b"\xff" + len(body).to_bytes(4, "big") + body
        elif style == "partial":
            power = draw(st.integers(0, 6))
            encoded = _partial(tag, body, power)
            if len(body) > (1 << power) and tag != 18:
                ok = False
            out += encoded
        else:
            width = int(style[-1])
            if len(body) >= 256 ** min(width, 3):
                width = 4
            kind = {1: 0, 2: 1, 4: 2}[width]
            out += bytes([0x80 | (tag << 2) | kind]) + len(body).to_bytes(width, "big") + body
    if not (tags[-1] == 18 and len(tags) >= 2 and all(t in (1, 3) for t in tags[:-1])):
        ok = False
    mutation = draw(st.sampled_from(["none", "none", "truncate", "append", "indeterminate"]))
    # truncation or appended bytes only on valid streams: on others they could repair it
    if mutation == "truncate" and ok:
        out = out[: -draw(st.integers(1, len(out)))]
        ok = False
    elif mutation == "append" and ok:
        out += draw(st.binary(min_size=1, max_size=20))
        ok = False
    elif mutation == "indeterminate":
        out = bytes([0x80 | (1 << 2) | 3]) + out
        ok = False
    return out, ok


def _new_len(n: int) -> bytes:
    if n < 192:
        return bytes([n])
    n -= 192
    return bytes([(n >> 8) + 192, n & 0xFF])


def _partial(tag: int, body: bytes, power: int) -> bytes:
    out = bytearray([0xC0 | tag])
    pos, chunk = 0, 1 << power
    while len(body) - pos > chunk:
        out.append(224 + power)
        out += body[pos : pos + chunk]
        pos += chunk
    return bytes(out) + _new_len(len(body) - pos) + body[pos:]


@given(packet_streams())
def test_hypothesis_packet_streams_accepted_iff_session_keys_then_one_seipd(stream):
    data, should_accept = stream
    try:
        tags = check_packets(data)
    except NotEncrypted:
        assert not should_accept
    else:
        assert should_accept, data.hex()
        assert tags[-1] == 18
        assert set(tags[:-1]) <= {1, 3}
        assert len(tags) >= 2


@given(st.binary(max_size=600))
def test_hypothesis_arbitrary_bytes_never_crash_never_accept_garbage(data):
    try:
        tags = check_packets(data)
    except NotEncrypted:
        return
    assert tags[-1] == 18 and len(tags) >= 2 and set(tags[:-1]) <= {1, 3}


# -- armor --

PAYLOAD = (
    bytes([0xC1, 21, 3]) + b"k" * 20 + bytes([0xC3, 11, 4]) + b"s" * 10 + bytes([0xD2, 50, 1])
) + b"c" * 49


def test_payload_fixture_is_valid():
    assert check_packets(PAYLOAD) == [1, 3, 18]


@st.composite
def armors(draw):
    """(armor bytes, incoming, should_accept) with headers, CRC, widths, junk varied."""
    payload = PAYLOAD if draw(st.booleans()) else draw(st.binary(min_size=0, max_size=80))
    payload_ok = _is_valid(payload)
    headers = draw(
        st.lists(st.sampled_from(["Version: GnuPG", "Comment: hi", "Hash: SHA256"]), max_size=2)
    )
    incoming = draw(st.booleans())
    crc = draw(st.sampled_from(["valid", "none", "bad"]))
    width = draw(st.sampled_from([4, 16, 60, 64, 76, 96]))
    eol = draw(st.sampled_from(["\r\n", "\r\n", "\n"]))
    lead = draw(st.sampled_from(["", "", "\r\n", " "]))
    trailing = draw(st.sampled_from(["", "\r\n", "\r\n\r\n"]))
    text = base64.b64encode(payload).decode()
    lines = ["-----BEGIN PGP MESSAGE-----", *headers, ""]
    lines += [text[i : i + width] for i in range(0, len(text), width)]
    if crc != "none":
        value = openpgp.crc24(payload) ^ (0 if crc == "valid" else 1)
        lines.append("=" + base64.b64encode(value.to_bytes(3, "big")).decode())
    lines.append("-----END PGP MESSAGE-----")
    data = (lead + eol.join(lines) + trailing).encode()
    should = (
        payload_ok
        and eol == "\r\n"
        and lead == ""
        and crc != "bad"
        and (not headers or (incoming and "Hash: SHA256" not in headers))
    )
    return data, incoming, should


def _is_valid(payload: bytes) -> bool:
    try:
        check_packets(payload)
    except NotEncrypted:
        return False
    return True


@given(armors())
def test_hypothesis_armor_variations(case):
    data, incoming, should_accept = case
    try:
        check_armored(data, incoming=incoming)
    except NotEncrypted:
        assert not should_accept, data
    else:
        assert should_accept, data


@given(st.binary(max_size=400), st.booleans())
def test_hypothesis_arbitrary_armor_text_never_crashes(data, incoming):
    with contextlib.suppress(NotEncrypted):
        check_armored(b"-----BEGIN PGP MESSAGE-----\r\n" + data, incoming=incoming)


@pytest.mark.parametrize(
    "armor",
    [
        b"-----BEGIN PGP MESSAGE-----\r\n\r\n-----END PGP MESSAGE-----\r\n",
        b"-----BEGIN PGP MESSAGE-----\r\n\r\n=njUN\r\n-----END PGP MESSAGE-----",
        b"-----BEGIN PGP MESSAGE-----\r\n-----END PGP MESSAGE-----",
        b"-----BEGIN PGP MESSAGE-----\r\n\r\nwcBMA===\r\n-----END PGP MESSAGE-----",
        b"-----BEGIN PGP MESSAGE-----\r\n\r\nwcBM\r\n-----END PGP MESSAGE----- x",
        b"-----BEGIN PGP SIGNATURE-----\r\n\r\nwcBM\r\n-----END PGP SIGNATURE-----",
    ],
)
def test_degenerate_armors_refused(armor):
    with pytest.raises(NotEncrypted):
        check_armored(armor, incoming=True)
