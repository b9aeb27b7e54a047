"""DKIM CPU per message inside the milter's process: stock dkimpy against the milter's path.

    cd /tmp && /work/main/.venv/bin/python /work/main/bench/milter/bench_dkim.py

One 6 KB Delta-Chat-shaped encrypted message (the Postfix benchmark's, with the Received field
Postfix adds), signed by its sender's domain. Measured in one process, rounds alternating:
verification as the milter did it before issue 23 (`dkimpolicy.decide` over stock
`dkim.DKIM(message).verify`) and as it does now (`dkimverify.Verifier`), both with the key
record in the cache; signing with stock `dkim.DKIM(message).sign` and with `dkimsign.Signer`.
CPU time is `time.process_time()`; the figures are medians of the rounds. The verdicts and
signatures are checked equal first. `--profile` prints cProfile's top entries of 300
verifications and 300 signings of each kind.
"""

from __future__ import annotations

import argparse
import base64
import cProfile
import json
import pstats
import statistics
import sys
import time
from pathlib import Path
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "testkit"))  # the harness package

import dkim
import messages
from chatmail_services.milter import dkimpolicy, mime
from chatmail_services.milter.dkimsign import Signer, header_list
from chatmail_services.milter.dkimverify import _DKIMPY_LOG, KeyCache, KeyLookup, Verifier
from cryptography.hazmat.primitives import serialization
from harness.messages import dkim_sign

from chatmail_services import dkimkey

DOMAIN, SELECTOR = "sender.test", "chatmail"
RECEIVED = (
    b"Received: from localhost (localhost [127.0.0.1])\r\n\tby chat.example (Postfix) with ESMTP"
    b" id 4Xb2Kq1Lz7\r\n\tfor <bob123456@chat.example>; Mon,  7 Dec 2026 22:00:00 +0000 (UTC)\r\n"
)


def key_pair() -> tuple[bytes, bytes]:
    """A new RSA 2048 key (PEM) and its DKIM record."""
    pem = dkimkey.new_private_pem()
    key = serialization.load_pem_private_key(pem, password=None)
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return pem, dkimkey.dkim_record_value(base64.b64encode(der).decode()).encode()


def stock_verdict(message: bytes, headers: mime.Headers, dnsfunc) -> object:
    """The verification as before issue 23: the policy over stock dkimpy."""
    parsed: list = []

    def check(index: int) -> dkimpolicy.Check:
        if not parsed:
            parsed.append(dkim.DKIM(message, logger=_DKIMPY_LOG))
        ok = parsed[0].verify(idx=index, dnsfunc=dnsfunc)
        return dkimpolicy.Check.VALID if ok else dkimpolicy.Check.INVALID

    return dkimpolicy.decide(headers, check, 5)


def stock_sign(message: bytes, pem: bytes) -> bytes:
    """The signing as before issue 23: stock dkimpy with the milter's h= list."""
    signer = dkim.DKIM(message, linesep=b"\n")
    names = [name.decode("ascii", "replace") for name, _ in signer.headers]
    field = signer.sign(
        SELECTOR.encode(),
        DOMAIN.encode(),
        pem,
        canonicalize=(b"relaxed", b"simple"),
        include_headers=[name.encode("ascii") for name in header_list(names)],
    )
    return field.partition(b":")[2].rstrip(b"\r\n")


def cpu_ms(work, count: int) -> float:
    start = time.process_time()
    for _ in range(count):
        work()
    return (time.process_time() - start) * 1000 / count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=6000)
    parser.add_argument("--count", type=int, default=2000, help="operations per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    pem, record = key_pair()
    plain = RECEIVED + messages.full_message(f"bench0001@{DOMAIN}", args.size)
    signed = dkim_sign(plain, DOMAIN, SELECTOR, pem)
    headers = mime.parse_message(signed).headers
    lookup = KeyLookup(lambda name: ((record,), 3600), KeyCache(100, 3600), 4096)
    verifier = Verifier(lookup, 5)
    signer = Signer(SELECTOR, DOMAIN, pem)

    def dnsfunc(name, timeout=5):
        return record

    ours_verdict = verifier.verdict(signed, headers)
    assert ours_verdict == stock_verdict(signed, headers, lookup) and ours_verdict.accepted
    with mock.patch.object(time, "time", lambda: 1764633600.0):
        assert signer.sign(plain) == stock_sign(plain, pem)
    work = {
        "verify_stock": lambda: stock_verdict(signed, headers, lookup),
        "verify_milter": lambda: verifier.verdict(signed, headers),
        "sign_stock": lambda: stock_sign(plain, pem),
        "sign_milter": lambda: signer.sign(plain),
    }
    for run in work.values():  # warm-up
        cpu_ms(run, 50)
    figures: dict[str, list[float]] = {name: [] for name in work}
    for _ in range(args.rounds):
        for name, run in work.items():
            figures[name].append(cpu_ms(run, args.count))
    medians = {name: round(statistics.median(values), 4) for name, values in figures.items()}
    report = {
        "command": " ".join([sys.executable, *sys.argv]),
        "message_bytes": len(signed),
        "cpu_ms_per_message_median": medians,
        "cpu_ms_per_message_rounds": {k: [round(v, 4) for v in vs] for k, vs in figures.items()},
        "verify_ratio_milter_to_stock": round(
            medians["verify_milter"] / medians["verify_stock"], 3
        ),
        "sign_ratio_milter_to_stock": round(medians["sign_milter"] / medians["sign_stock"], 3),
        "target_verify_at_most_0.2_ms": medians["verify_milter"] <= 0.2,
        "target_sign_at_most_0.4_ms": medians["sign_milter"] <= 0.4,
    }
    print(json.dumps(report, indent=2))
    if args.profile:
        for name, run in work.items():
            profile = cProfile.Profile()
            profile.runcall(lambda run=run: [run() for _ in range(300)])
            print(f"\n== {name}: 300 calls")
            pstats.Stats(profile, stream=sys.stdout).sort_stats("tottime").print_stats(8)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
