"""The policy on real messages: Delta Chat samples, GnuPG output, and every named bypass."""

from __future__ import annotations

import base64

import pytest
from chatmail_services.milter import mime, policy
from chatmail_services.milter.policy import Envelope, decide
from harness.messages import ALICE, BOB, SWAKS_SAMPLE, deltachat_samples


def outgoing(data: bytes, sender=ALICE, rcpts=(BOB,), login=None) -> policy.Verdict:
    env = Envelope(sender, tuple(rcpts), login or sender)
    return decide(mime.parse_message(data), env, lambda rcpt: True)


def incoming(data: bytes, sender="x@other.example", rcpts=(BOB,), enforced=True):
    env = Envelope(sender, tuple(rcpts), None)
    return decide(mime.parse_message(data), env, lambda rcpt: enforced)


def assert_523(verdict: policy.Verdict) -> None:
    assert verdict.describe() == "reject 523 5.7.10 Encryption Needed: Invalid Unencrypted Mail"


def assert_accepted(
    verdict: policy.Verdict, reason: str, chgfrom: str | None = None, context: object = None
) -> None:
    """Accepted, and by the rule named `reason` (not by some other exemption)."""
    actual = (verdict.action, verdict.reason, verdict.chgfrom)
    assert actual == ("accept", reason, chgfrom), (context, verdict.describe())


# the legacy Secure-Join requests are the only samples in cleartext (see the samples' README)
CLEARTEXT_SAMPLES = ("legacy-vc-request-CLEARTEXT", "legacy-vg-request-CLEARTEXT")


def expected_reason(name: str) -> str:
    return "Secure-Join request" if name in CLEARTEXT_SAMPLES else "encrypted"


@pytest.fixture(scope="module")
def gpg_armor(gpg) -> str:
    return gpg.encrypt("Hello Bob, this is a Delta Chat message.\r\n")


@pytest.fixture(scope="module")
def packets(gpg_armor, build):
    return build.parse_packets(build.dearmor_gpg(gpg_armor))


# -- the real client's messages --


def test_every_deltachat_sample_but_the_swaks_one_is_accepted(samples):
    names = []
    for sample in samples.values():
        verdict = outgoing(sample.data, sample.sender, (sample.rcpt,))
        if sample.name == SWAKS_SAMPLE:
            assert_523(verdict)
        else:
            # which rule accepted: encryption, except the legacy cleartext Secure-Join requests
            assert_accepted(verdict, expected_reason(sample.name), context=sample.name)
            names.append(sample.name)
    assert len(names) == 21


def test_samples_are_accepted_incoming_too(samples):
    for sample in deltachat_samples():
        verdict = incoming(sample.data, sample.sender, (sample.rcpt,))
        assert_accepted(verdict, expected_reason(sample.name), context=sample.name)
        assert verdict.chgfrom is None
    swaks = samples[SWAKS_SAMPLE]
    assert_523(incoming(swaks.data, swaks.sender, (swaks.rcpt,)))


def test_samples_are_refused_with_lf_line_endings(samples):
    sample = samples["chat-text-alice-to-bob"]
    assert_523(outgoing(sample.data.replace(b"\r\n", b"\n"), sample.sender, (sample.rcpt,)))


# -- GnuPG output in every packet-header shape --


def test_gnupg_message_as_emitted_is_accepted(gpg_armor, build):
    armored = gpg_armor.replace("\n", "\r\n")
    assert_accepted(outgoing(build.encrypted_message(armored)), "encrypted")


@pytest.mark.parametrize("shape", ["legacy", "new", "partial"])
def test_gnupg_message_rewritten_is_accepted_and_still_decrypts(gpg, packets, build, shape):
    payload = build.serialize(packets, shape)
    assert gpg.decrypt_payload(payload).startswith(b"Hello Bob")
    for crc in (True, False):
        verdict = outgoing(build.encrypted_message(build.armor(payload, crc=crc)))
        assert_accepted(verdict, "encrypted", context=(shape, crc))


def test_gnupg_large_message_uses_partial_lengths_and_is_accepted(gpg, build):
    text = gpg.encrypt("x" * 200_000)
    payload = build.dearmor_gpg(text)
    assert_accepted(outgoing(build.encrypted_message(text.replace("\n", "\r\n"))), "encrypted")
    partial = build.serialize(build.parse_packets(payload), "partial")
    assert gpg.decrypt_payload(partial) == b"x" * 200_000
    assert_accepted(outgoing(build.encrypted_message(build.armor(partial))), "encrypted")


def test_symmetric_only_message_like_securejoin_v3_is_accepted(gpg, build):
    text = gpg.encrypt("vc-request-pubkey", symmetric="qr-code-secret")
    payload = build.dearmor_gpg(text)
    assert [p.tag for p in build.parse_packets(payload)] == [3, 18]
    assert_accepted(outgoing(build.encrypted_message(build.armor(payload))), "encrypted")


def test_incoming_armor_headers_version_and_comment(packets, build):
    payload = build.serialize(packets, "new")
    armored = build.armor(payload, headers=("Version: GnuPG v2", "Comment: provider"))
    message = build.encrypted_message(armored)
    # the envelope sender (x@other.example) is not the From address: reset, as for forwards
    assert_accepted(incoming(message), "encrypted; envelope sender reset", "<>")
    assert_523(outgoing(message))  # outgoing armor has no headers
    other = build.encrypted_message(build.armor(payload, headers=("Hash: SHA256",)))
    assert_523(incoming(other))


# -- every bypass named in the spec --


def test_bypass_armor_markers_in_text_plain(packets, build):
    armored = build.armor(build.serialize(packets, "new"))
    assert_523(outgoing(build.plain_message(body=armored)))
    assert_523(incoming(build.plain_message(body=armored)))


def test_bypass_pgp_mime_around_literal_data_packet(build):
    literal = b"b\x00\x00\x00\x00\x00Hello in cleartext"
    payload = build.encode_new(11, literal) + literal
    assert_523(outgoing(build.encrypted_message(build.armor(payload))))
    # even behind a session-key packet
    pkesk = bytes([3]) + b"\x00" * 40
    payload = build.encode_new(1, pkesk) + pkesk + payload
    assert_523(outgoing(build.encrypted_message(build.armor(payload))))


def test_bypass_secure_join_header_over_spam_body(build):
    spam = build.secure_join_message("vc-request", "Buy cheap watches at example.com")
    assert_523(outgoing(spam))
    assert_523(incoming(spam))


def test_bypass_secure_join_body_not_matching_header(build):
    mixed = build.secure_join_message("vc-request", "Secure-Join: vg-request")
    assert_523(outgoing(mixed))


def test_bypass_only_the_version_part(build):
    b = "BOUNDARY"
    data = (
        f"From: <{ALICE}>\r\nContent-Type: multipart/encrypted;"
        f' protocol="application/pgp-encrypted"; boundary="{b}"\r\n\r\n'
        f"--{b}\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n--{b}--\r\n"
    ).encode()
    assert_523(outgoing(data))


def test_bypass_empty_armor(build):
    empty = "-----BEGIN PGP MESSAGE-----\r\n\r\n-----END PGP MESSAGE-----\r\n"
    assert_523(outgoing(build.encrypted_message(empty)))


def test_bypass_crc_line_alone(build):
    crc_only = "-----BEGIN PGP MESSAGE-----\r\n\r\n=njUN\r\n-----END PGP MESSAGE-----\r\n"
    assert_523(outgoing(build.encrypted_message(crc_only)))


def test_bypass_compressed_packet(build):
    compressed = b"\x00" + b"cleartext, stored uncompressed"
    payload = build.encode_new(8, compressed) + compressed
    assert_523(outgoing(build.encrypted_message(build.armor(payload))))


def test_bypass_trailing_packet_after_seipd(packets, build):
    literal = b"b\x00\x00\x00\x00\x00Hello in cleartext"
    payload = build.serialize(packets, "new") + build.encode_new(11, literal) + literal
    assert_523(outgoing(build.encrypted_message(build.armor(payload))))


def test_bypass_lf_only_line_endings(packets, build):
    message = build.encrypted_message(build.armor(build.serialize(packets, "new")))
    assert_accepted(outgoing(message), "encrypted")
    assert_523(outgoing(message.replace(b"\r\n", b"\n")))
    # LF only inside the armor
    head, sep, rest = message.partition(b"-----BEGIN PGP MESSAGE-----\r\n")
    assert_523(outgoing(head + sep + rest.replace(b"\r\n", b"\n", 3)))


def test_bypass_missing_protocol_parameter(packets, build):
    armored = build.armor(build.serialize(packets, "new"))
    assert_523(outgoing(build.encrypted_message(armored, protocol=None)))
    wrong = '; protocol="application/pgp-signature"'
    assert_523(outgoing(build.encrypted_message(armored, protocol=wrong)))


def test_bypass_third_part_and_nested_multipart(packets, build):
    message = build.encrypted_message(build.armor(build.serialize(packets, "new")))
    closing = b"--18eb06d86b123ffe_546051fd537078a1_a23cbb36c29b26fd--\r\n"
    third = (
        b"--18eb06d86b123ffe_546051fd537078a1_a23cbb36c29b26fd\r\n"
        b"Content-Type: text/plain\r\n\r\ncleartext riding along\r\n"
    )
    assert_523(outgoing(message.replace(closing, third + closing)))
    nested = message.replace(
        b"Content-Type: application/octet-stream",
        b'Content-Type: multipart/mixed; boundary="inner"',
    )
    assert_523(outgoing(nested))


def test_bypass_zero_session_key_packets(packets, build):
    seipd_only = build.serialize([p for p in packets if p.tag == 18], "new")
    assert_523(outgoing(build.encrypted_message(build.armor(seipd_only))))


def test_bypass_legacy_indeterminate_length(packets, build):
    pkesk = [p for p in packets if p.tag == 1]
    seipd = build.serialize([p for p in packets if p.tag == 18], "new")
    first = build.serialize(pkesk[:1], "legacy")
    assert first[0] == 0x84  # legacy PKESK, 1-octet length
    indeterminate = bytes([0x87]) + first[2:]
    payload = indeterminate + build.serialize(pkesk[1:], "legacy") + seipd
    assert_523(outgoing(build.encrypted_message(build.armor(payload))))
    assert_accepted(outgoing(build.encrypted_message(build.armor(first + seipd))), "encrypted")


def test_bypass_bad_checksum_and_checksum_not_last(packets, build):
    armored = build.armor(build.serialize(packets, "new"))
    lines = armored.split("\r\n")
    crc_index = next(i for i, line in enumerate(lines) if line.startswith("="))
    bad = lines.copy()
    bad[crc_index] = "=AAAA" if lines[crc_index] != "=AAAA" else "=BBBB"
    assert_523(outgoing(build.encrypted_message("\r\n".join(bad))))
    moved = lines.copy()
    moved.insert(2, moved.pop(crc_index))
    assert_523(outgoing(build.encrypted_message("\r\n".join(moved))))


def test_bypass_leading_blank_line_before_armor(packets, build):
    armored = build.armor(build.serialize(packets, "new"))
    assert_523(outgoing(build.encrypted_message("\r\n" + armored)))
    assert_523(outgoing(build.encrypted_message(" " + armored)))


def test_bypass_part_types_swapped_or_wrong(packets, build):
    message = build.encrypted_message(build.armor(build.serialize(packets, "new")))
    swapped = message.replace(b"application/octet-stream", b"text/plain")
    assert_523(outgoing(swapped))
    version2 = message.replace(b"Version: 1\r\n", b"Version: 2\r\n")
    assert_523(outgoing(version2))


def test_base64_transfer_encoded_armor_is_decoded_and_accepted(packets, build):
    armored = build.armor(build.serialize(packets, "new"))
    encoded = base64.encodebytes(armored.encode()).decode().replace("\n", "\r\n")
    message = build.encrypted_message(encoded)
    head, sep, rest = message.partition(b'encrypted.asc";\r\n')
    rest = rest.replace(b"Content-Transfer-Encoding: 7bit", b"Content-Transfer-Encoding: base64", 1)
    assert_accepted(outgoing(head + sep + rest), "encrypted")


# -- Secure-Join, Autocrypt Setup Message, From and login rules --


@pytest.mark.parametrize("kind", ["vc-request", "vg-request"])
def test_secure_join_request_accepted_exactly(build, kind):
    exact = build.secure_join_message(kind, f"Secure-Join: {kind}")
    assert_accepted(outgoing(exact), "Secure-Join request")
    spaced = build.secure_join_message(kind, f"  SECURE-JOIN: {kind.upper()} ")
    assert_accepted(outgoing(spaced), "Secure-Join request")
    reset = "Secure-Join request; envelope sender reset"  # From is not x@other.example
    assert_accepted(incoming(exact), reset, "<>")
    assert_accepted(incoming(exact, sender=ALICE), "Secure-Join request")


@pytest.mark.parametrize(
    ("header", "part_type"),
    [
        ("vc-auth-required", "text/plain"),
        ("vc-request-with-auth", "text/plain"),
        ("vc-request", "text/html"),
        ("vc-request", "multipart/alternative; boundary=x"),
    ],
)
def test_secure_join_other_steps_or_types_need_encryption(build, header, part_type):
    body = f"Secure-Join: {header}"
    assert_523(outgoing(build.secure_join_message(header, body, part_type=part_type)))


def test_secure_join_with_two_parts_or_two_headers_refused(build):
    message = build.secure_join_message()
    two_parts = message.replace(
        b"Secure-Join: vc-request\r\n--",
        b"Secure-Join: vc-request\r\n--18eb06ecead8da2f_7d87d86c5a589e75_ec20a9b83d76310b\r\n"
        b"Content-Type: text/plain\r\n\r\nmore\r\n--",
    )
    assert_523(outgoing(two_parts))
    two_headers = message.replace(b"Chat-Version", b"Secure-Join: vc-request\r\nChat-Version")
    assert_523(outgoing(two_headers))


def setup_message(sender=ALICE, subject="Autocrypt Setup Message") -> bytes:
    return (
        f"From: <{sender}>\r\nTo: <{sender}>\r\nSubject: {subject}\r\n"
        "Autocrypt-Setup-Message: v1\r\n"
        'Content-Type: multipart/mixed; boundary="X"\r\n\r\n'
        "--X\r\nContent-Type: text/plain\r\n\r\nThis is the Autocrypt Setup Message\r\n"
        "--X\r\nContent-Type: application/autocrypt-setup\r\n\r\n-----BEGIN PGP MESSAGE-----\r\n"
        "--X--\r\n"
    ).encode()


def test_autocrypt_setup_message_only_to_self():
    assert_accepted(outgoing(setup_message(), rcpts=(ALICE,)), "Autocrypt Setup Message to self")
    upper = outgoing(setup_message(), rcpts=(ALICE.upper(),))
    assert_accepted(upper, "Autocrypt Setup Message to self")
    assert_523(outgoing(setup_message(), rcpts=(BOB,)))
    assert_523(outgoing(setup_message(), rcpts=(ALICE, BOB)))
    assert_523(outgoing(setup_message(subject="Autocrypt Setup Message 2"), rcpts=(ALICE,)))
    assert_523(incoming(setup_message(), sender=ALICE, rcpts=(ALICE,)))


def test_from_header_must_match_envelope_sender(samples):
    sample = samples["chat-text-alice-to-bob"]
    verdict = outgoing(sample.data, "mallory12@chat.localhost", (sample.rcpt,))
    assert verdict.describe() == "reject 550 5.7.1 From header does not match sender"
    assert_accepted(outgoing(sample.data, sample.sender.upper(), (sample.rcpt,)), "encrypted")


@pytest.mark.parametrize(
    "headers",
    [
        b"",
        b"From: <alice1234@chat.example>\r\nFrom: <alice1234@chat.example>\r\n",
        b"From: <alice1234@chat.example>, <bob123456@chat.example>\r\n",
        b"From: Mallory <mallory@evil.example> <alice1234@chat.example>\r\n",
        b'From: "alice1234@chat.example" <mallory@evil.example>\r\n',
    ],
)
def test_from_header_none_several_or_forged_refused(headers):
    data = headers + b"Subject: x\r\n\r\nbody\r\n"
    verdict = outgoing(data)
    assert verdict.code == "550"
    assert verdict.xcode == "5.7.1"


def test_from_header_with_display_name_and_comment_accepted(build):
    message = build.secure_join_message().replace(
        b"From: <alice1234@chat.example>",
        b'From: "Alice (the real one)" <Alice1234@Chat.Example> (comment)',
    )
    assert_accepted(outgoing(message), "Secure-Join request")


def test_envelope_sender_must_be_login(build):
    message = build.secure_join_message()
    verdict = outgoing(message, login="bob123456@chat.example")
    assert verdict.describe() == "reject 550 5.7.1 Sender address does not match login"
    assert_accepted(outgoing(message, login=ALICE.upper()), "Secure-Join request")
    assert outgoing(message, sender="", login=ALICE).code == "550"


# -- incoming rules --


def report_message(auto="auto-replied", sender="MAILER-DAEMON@other.example", ctype=None):
    ctype = ctype or 'multipart/report; report-type=delivery-status; boundary="R"'
    head = f"Auto-Submitted: {auto}\r\n" if auto is not None else ""
    return (
        f"From: {sender}\r\nTo: <{BOB}>\r\nSubject: Undelivered Mail\r\n{head}"
        f"Content-Type: {ctype}\r\n\r\n--R\r\nContent-Type: text/plain\r\n\r\nsorry\r\n--R--\r\n"
    ).encode()


def test_incoming_delivery_report_accepted_only_exactly():
    assert_accepted(incoming(report_message(), sender=""), "delivery report")
    assert_523(incoming(report_message(auto="no"), sender=""))
    assert_523(incoming(report_message(auto=None), sender=""))
    assert_523(incoming(report_message(sender="postmaster@other.example"), sender=""))
    assert_523(incoming(report_message(ctype='multipart/mixed; boundary="R"'), sender=""))
    assert_523(outgoing(report_message(sender=ALICE)))  # no exemption outgoing


def test_incoming_cleartext_refused_only_for_enforcing_recipients(build):
    plain = build.plain_message(sender="x@other.example")
    assert_523(incoming(plain, enforced=True))
    verdict = incoming(plain, sender="x@other.example", enforced=False)
    assert_accepted(verdict, "cleartext to recipients not enforcing encryption")
    assert verdict.chgfrom is None
    env = Envelope("x@other.example", ("a@chat.example", "b@chat.example"), None)
    verdict = decide(mime.parse_message(plain), env, lambda rcpt: rcpt.startswith("b"))
    assert_523(verdict)


def test_incoming_from_mismatch_resets_envelope_sender(packets, build):
    message = build.encrypted_message(build.armor(build.serialize(packets, "new")))
    verdict = incoming(message, sender="bounces+123@lists.example")
    assert_accepted(verdict, "encrypted; envelope sender reset", "<>")
    assert verdict.chgfrom == "<>"
    assert incoming(message, sender=ALICE.upper()).chgfrom is None
    assert incoming(message, sender="").chgfrom is None


def test_reasons_never_contain_addresses(build):
    for verdict in (
        outgoing(build.plain_message()),
        outgoing(build.plain_message(), login=BOB),
        outgoing(build.plain_message(sender=BOB)),
        incoming(build.plain_message()),
    ):
        assert not verdict.accepted
        assert "@" not in verdict.reason
