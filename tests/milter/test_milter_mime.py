"""The byte-exact MIME reader, and hypothesis-generated MIME trees through the policy."""

from __future__ import annotations

import base64
from dataclasses import dataclass

import pytest
from chatmail_services.milter import mime, openpgp, policy
from harness.messages import ALICE
from hypothesis import given
from hypothesis import strategies as st


def test_parse_content_type():
    ct = mime.parse_content_type(
        'Multipart/Encrypted; protocol="application/pgp-encrypted";\r\n boundary="a b\\"c"'.replace(
            "\r\n", ""
        )
    )
    assert ct.type == "multipart/encrypted"
    assert ct.params == {"protocol": "application/pgp-encrypted", "boundary": 'a b"c'}
    assert mime.parse_content_type(None).type == "text/plain"
    assert mime.parse_content_type("text/plain; charset=utf-8;").params == {"charset": "utf-8"}
    for bad in ("", "text", "text/plain; =x", "a/b; x=1; x=2", "a/b; title*=utf-8''x"):
        assert mime.parse_content_type(bad) is None, bad


def test_headers_unfold_and_reject_bare_lf():
    headers = mime.parse_header_block(b"Content-Type: multipart/mixed;\r\n\tboundary=x\r\nA: b")
    assert headers == [("content-type", "multipart/mixed;\tboundary=x"), ("a", "b")]
    assert mime.parse_header_block(b"A: b\nC: d") is None
    assert mime.parse_header_block(b" folded first") is None
    assert mime.parse_header_block(b"no colon") is None


def test_split_multipart_byte_exact():
    body = b"preamble\r\n--b\r\nA: 1\r\n\r\none\r\n--b \r\n\r\ntwo\r\n\r\n--b--\r\nepilogue"
    parts = mime.split_multipart(body, "b")
    assert [body[s:e] for s, e in parts] == [b"A: 1\r\n\r\none", b"\r\ntwo\r\n"]
    assert mime.split_multipart(b"--b\r\n\r\nx\r\n--bb\r\n\r\n--b--", "b") is not None
    assert len(mime.split_multipart(b"--b\r\n\r\nx\r\n--bb\r\n\r\n--b--", "b")) == 1
    assert mime.split_multipart(b"--b\r\n\r\nx\r\n", "b") is None  # no close delimiter
    assert mime.split_multipart(b"--b\n\nx\n--b--\n", "b") is None  # LF only
    assert mime.split_multipart(b"--b--\r\n", "b") == []


@pytest.mark.parametrize(
    ("value", "address"),
    [
        ("<a@b.example>", "a@b.example"),
        ("a@b.example", "a@b.example"),
        ('"Name, with comma" <a@b.example>', "a@b.example"),
        ("Name <a@b.example> (comment)", "a@b.example"),
        ("a@b.example (Name)", "a@b.example"),
        ("<a@b.example>, <c@d.example>", None),
        ("a@b.example, c@d.example", None),
        ("x@y <a@b.example>", None),
        ("<a@b.example> <c@d.example>", None),
        ("", None),
        ("<>", None),
        ("group: a@b.example;", None),
        ('"unterminated <a@b.example>', None),
        ("<a@[192.0.2.1]>", "a@[192.0.2.1]"),
        ("Name <a@[IPv6:2001:db8::1]>", "a@[IPv6:2001:db8::1]"),
        ("a@[192.0.2.1", None),
        ("a@[192.0.2.1]x", None),
        ("a@[[192.0.2.1]]", None),
    ],
)
def test_single_address(value, address):
    assert mime.single_address(value) == address


# -- hypothesis: MIME trees --

PAYLOAD = bytes([0xC1, 21, 3]) + b"k" * 20 + bytes([0xD2, 50, 1]) + b"c" * 49
ARMOR = (
    "-----BEGIN PGP MESSAGE-----\r\n\r\n"
    + base64.b64encode(PAYLOAD).decode()
    + "\r\n="
    + base64.b64encode(openpgp.crc24(PAYLOAD).to_bytes(3, "big")).decode()
    + "\r\n-----END PGP MESSAGE-----\r\n"
)
LEAF_TYPES = ["application/pgp-encrypted", "application/octet-stream", "text/plain"]
LEAF_BODIES = ["Version: 1", ARMOR, "hello", "-----BEGIN PGP MESSAGE-----\r\n\r\n" + ARMOR]
MULTI_TYPES = ["encrypted", "mixed", "alternative"]


@dataclass
class Leaf:
    ctype: str
    body: str


@dataclass
class Multi:
    subtype: str
    protocol: bool
    children: list


leaves = st.builds(Leaf, st.sampled_from(LEAF_TYPES), st.sampled_from(LEAF_BODIES))
trees = st.recursive(
    leaves,
    lambda kids: st.builds(
        Multi, st.sampled_from(MULTI_TYPES), st.booleans(), st.lists(kids, max_size=3)
    ),
    max_leaves=6,
)


@st.composite
def near_pgp_mime(draw):
    """The exact PGP/MIME shape with zero or more small mutations (so both outcomes occur)."""

    def mostly(right, *wrong):
        return draw(st.sampled_from([right, right, right, *wrong]))

    first = Leaf(mostly(LEAF_TYPES[0], *LEAF_TYPES[1:]), mostly("Version: 1", "Version: 2"))
    second = Leaf(mostly(LEAF_TYPES[1], LEAF_TYPES[0], LEAF_TYPES[2]), mostly(*LEAF_BODIES[1:]))
    children = [first, second]
    if draw(st.integers(0, 4)) == 0:
        children = draw(st.permutations([*children, draw(trees)]))
    if draw(st.integers(0, 4)) == 0:
        children = [draw(trees), children[-1]]
    return Multi(mostly("encrypted", "mixed"), draw(st.sampled_from([True, True, False])), children)


mime_trees = st.one_of(trees, near_pgp_mime())


def render(node, depth=0) -> tuple[str, str]:
    """(Content-Type value, body) of a node, CRLF throughout, boundaries unique per depth."""
    if isinstance(node, Leaf):
        return node.ctype, node.body
    boundary = f"b{depth}-{id(node)}"
    proto = '; protocol="application/pgp-encrypted"' if node.protocol else ""
    body = ""
    for child in node.children:
        ctype, text = render(child, depth + 1)
        body += f"--{boundary}\r\nContent-Type: {ctype}\r\n\r\n{text}\r\n"
    body += f"--{boundary}--\r\n"
    return f'multipart/{node.subtype}{proto}; boundary="{boundary}"', body


def expected_encrypted(node) -> bool:
    return (
        isinstance(node, Multi)
        and node.subtype == "encrypted"
        and node.protocol
        and len(node.children) == 2
        and isinstance(node.children[0], Leaf)
        and isinstance(node.children[1], Leaf)
        and node.children[0].ctype == "application/pgp-encrypted"
        and node.children[0].body == "Version: 1"
        and node.children[1].ctype == "application/octet-stream"
        and node.children[1].body == ARMOR
    )


@given(mime_trees, st.booleans())
def test_hypothesis_mime_trees_accepted_only_in_the_exact_pgp_mime_shape(tree, incoming):
    ctype, body = render(tree)
    data = f"From: <{ALICE}>\r\nContent-Type: {ctype}\r\n\r\n{body}".encode()
    env = policy.Envelope(ALICE, ("bob123456@chat.example",), None if incoming else ALICE)
    verdict = policy.decide(mime.parse_message(data), env, lambda rcpt: True)
    assert verdict.accepted == expected_encrypted(tree), (verdict.reason, data)
    if isinstance(tree, Multi):
        parts = mime.split_multipart(body.encode(), ctype.split('boundary="')[1][:-1])
        assert parts is not None and len(parts) == len(tree.children)


@given(st.binary(max_size=2000), st.booleans())
def test_hypothesis_arbitrary_messages_never_crash(data, incoming):
    env = policy.Envelope(ALICE, ("bob123456@chat.example",), None if incoming else ALICE)
    verdict = policy.decide(mime.parse_message(data), env, lambda rcpt: True)
    assert verdict.action in ("accept", "reject")


@given(st.lists(st.sampled_from([b"\r\n", b"\n", b"--b", b"--b--", b"x", b" ", b"--"])))
def test_hypothesis_multipart_splitter_never_crashes(chunks):
    parts = mime.split_multipart(b"".join(chunks), "b")
    assert parts is None or all(0 <= s <= e for s, e in parts)
