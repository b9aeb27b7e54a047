"""Zone-file text of records (RFC 1035 master file syntax) and the parser for that text.

Names are absolute (trailing dot); TTL and class are left to the zone ($TTL, IN). A TXT value
longer than 255 bytes becomes several quoted character-strings (the limit of one string);
inside quotes `"` and `\\` are escaped with a backslash, other bytes outside printable ASCII
as `\\DDD`. The parser reads back what `render_zone` writes (one record per line, no
parentheses, `;` comments), so the output of `chatmail-dns` can be checked and reused.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from chatmail_services.config import Config

from .records import Record, config_records, fqdn

MAX_STRING = 255
REQUIRED_HEADING = "; Required:"
RECOMMENDED_HEADING = "; Recommended:"
_HEADINGS = {
    REQUIRED_HEADING: "mail to or from the relay fails without these.",
    RECOMMENDED_HEADING: "better delivery and automatic client set-up; warnings only.",
}
_CLASSES = {"IN", "CH", "HS"}


class ZoneSyntaxError(ValueError):
    """The zone text is not what `render_zone` writes; says which line and why."""


# -- writing --


def split_txt(value: str) -> list[bytes]:
    """The UTF-8 bytes of `value` in character-strings of at most 255 bytes (one if empty)."""
    data = value.encode("utf-8")
    return [data[i : i + MAX_STRING] for i in range(0, len(data), MAX_STRING)] or [b""]


def quote(data: bytes) -> str:
    """One character-string as a quoted zone-file token."""
    out = []
    for byte in data:
        char = chr(byte)
        if char in '"\\':
            out.append("\\" + char)
        elif 0x20 <= byte <= 0x7E:
            out.append(char)
        else:
            out.append(f"\\{byte:03d}")
    return '"' + "".join(out) + '"'


def rdata_text(record: Record) -> str:
    """The record data as it appears in the zone file."""
    if record.rtype == "TXT":
        return " ".join(quote(chunk) for chunk in split_txt(record.value))
    return record.value


def record_line(record: Record, width: int = 0) -> str:
    """One record as a zone-file line: name, type, data."""
    return f"{record.name:<{width}} {record.rtype:<5} {rdata_text(record)}"


def render_zone(records: Iterable[Record], title: str = "") -> str:
    """Zone-file text of `records`: required ones, then recommended, each under a heading."""
    records = list(records)
    width = max((len(r.name) for r in records), default=0)
    lines = [f"; {title}"] if title else []
    for required, heading in ((True, REQUIRED_HEADING), (False, RECOMMENDED_HEADING)):
        group = [r for r in records if r.required == required]
        if not group:
            continue
        if lines:
            lines.append("")
        lines.append(f"{heading} {_HEADINGS[heading]}")
        lines += [record_line(r, width) for r in group]
    return "\n".join(lines) + "\n"


def config_zone_text(config: Config) -> str:
    """What `chatmail-dns` prints for this config (see `records.config_records` for errors)."""
    title = f"DNS records of the chatmail relay {config.chatmail.mail_domain} (chatmail-dns)"
    return render_zone(config_records(config), title)


# -- reading --


@dataclass(frozen=True)
class Token:
    """One token of a line: its text as written and, for character-strings, its bytes."""

    raw: str
    data: bytes
    quoted: bool


def _escape(line: str, i: int, lineno: int) -> tuple[bytes, int]:
    """The byte of the escape at line[i] (after the backslash) and the index after it."""
    if i >= len(line):
        raise ZoneSyntaxError(f"line {lineno}: backslash at the end of the line")
    digits = line[i : i + 3]
    if digits.isdigit() and len(digits) == 3 and digits.isascii():
        if int(digits) > 255:
            raise ZoneSyntaxError(f"line {lineno}: escape \\{digits} is not a byte")
        return bytes([int(digits)]), i + 3
    return line[i].encode("utf-8"), i + 1


def tokenize(line: str, lineno: int = 0) -> list[Token]:
    """The tokens of one line, up to a `;` comment outside quotes."""
    tokens: list[Token] = []
    i = 0
    while i < len(line):
        char = line[i]
        if char in " \t":
            i += 1
            continue
        if char == ";":
            break
        if char in "()":
            raise ZoneSyntaxError(f"line {lineno}: parentheses are not supported")
        start, quoted = i, char == '"'
        data = bytearray()
        i += 1 if quoted else 0
        while True:
            if i >= len(line):
                if quoted:
                    raise ZoneSyntaxError(f"line {lineno}: unterminated quoted string")
                break
            char = line[i]
            if quoted and char == '"':
                i += 1
                break
            if not quoted and char in ' \t;"()':
                break
            if char == "\\":
                byte, i = _escape(line, i + 1, lineno)
                data += byte
            else:
                data += char.encode("utf-8")
                i += 1
        tokens.append(Token(line[start:i], bytes(data), quoted))
    return tokens


def parse_line(line: str, required: bool, lineno: int = 0) -> Record | None:
    """The record on one line (None for blank and comment lines)."""
    if line[:1] in (" ", "\t") and line.strip() and not line.strip().startswith(";"):
        raise ZoneSyntaxError(f"line {lineno}: no owner name (continuation lines unsupported)")
    tokens = tokenize(line, lineno)
    if not tokens:
        return None
    name, rest = tokens[0], tokens[1:]
    if name.quoted or not name.raw.endswith(".") or name.raw in (".", "@"):
        raise ZoneSyntaxError(f"line {lineno}: owner {name.raw!r} is not an absolute name")
    if rest and rest[0].raw.isdigit():
        rest = rest[1:]
    if rest and rest[0].raw.upper() in _CLASSES:
        rest = rest[1:]
    if not rest or rest[0].quoted or not rest[0].raw.isalnum():
        raise ZoneSyntaxError(f"line {lineno}: no record type")
    rtype, rdata = rest[0].raw.upper(), rest[1:]
    if not rdata:
        raise ZoneSyntaxError(f"line {lineno}: {rtype} record without data")
    if rtype == "TXT":
        try:
            value = b"".join(t.data for t in rdata).decode("utf-8")
        except UnicodeDecodeError:
            raise ZoneSyntaxError(f"line {lineno}: TXT value is not UTF-8") from None
    else:
        value = " ".join(t.raw for t in rdata)
    return Record(fqdn(name.raw), rtype, value, required)


def iter_records(text: str) -> Iterator[Record]:
    required = True
    for lineno, line in enumerate(text.splitlines(), 1):
        if line.startswith(REQUIRED_HEADING):
            required = True
        elif line.startswith(RECOMMENDED_HEADING):
            required = False
        record = parse_line(line, required, lineno)
        if record is not None:
            yield record


def parse_zone(text: str) -> list[Record]:
    """The records of zone text as `render_zone` writes it (headings set `required`).

    Raises `ZoneSyntaxError` naming the first bad line.
    """
    return list(iter_records(text))
