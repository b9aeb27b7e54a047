"""The header hash of a DKIM signature: dkimpy's `select_headers` and `hash_headers`, faster.

Same results as dkimpy's functions (1.1.4, 1.1.8; property tests compare them): `select_headers`
finds each name's fields through one index of the header names instead of scanning all fields for
every name of `h=` (a signature of ours names some thirty, most of them absent), and the
signature field's b= value is removed by `dkimcanon.strip_b_value`. No I/O.
"""

from __future__ import annotations

from collections.abc import Sequence

from . import dkimcanon


def select_headers(headers: Sequence, include_headers: Sequence[bytes]) -> list:
    """dkimpy's `select_headers`: for each name of `include_headers` (lower case) the lowest
    field of that name not selected yet, if any."""
    positions: dict[bytes, list[int]] = {}
    for index, field in enumerate(headers):
        positions.setdefault(field[0].lower(), []).append(index)
    selected = []
    for name in include_headers:
        found = positions.get(name)
        if found:
            selected.append(headers[found.pop()])
    return selected


def hash_headers(hasher, policy, headers: Sequence, include_headers, sig_header) -> list:
    """dkimpy's `hash_headers`: the selected fields and the signature field without its b=
    value (no final CRLF) into `hasher`; returns the selected fields. `headers` are already
    canonicalized by `policy`, `sig_header` (name, value) is not."""
    signed = select_headers(headers, include_headers)
    sig_field = [(sig_header[0], dkimcanon.strip_b_value(sig_header[1]))]
    last = [(x, y.rstrip()) for x, y in policy.canonicalize_headers(sig_field)]
    hasher.update(b"".join(x + b":" + y for x, y in signed + last))
    return signed
