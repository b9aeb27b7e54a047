"""The LMTP server side (RFC 2033) that Postfix's lmtp client talks to: commands and DATA.

Pure parsing (`parse_command`, `parse_path`, `DataReader`) and one session loop over a pair of
binary streams (`serve_session`). After DATA the session answers once per accepted recipient,
in order, with what `deliver` returns. Whatever does not parse gets a 5xx syntax reply, never
an accept.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import BinaryIO

MAX_LINE = 4096  # a command line (RFC 5321 4.5.3.1.4 allows 512; parameters make it longer)
MAX_RECIPIENTS = 1000

OK = "250 2.0.0 Ok"
SYNTAX = "501 5.5.4 Syntax error in parameters"
UNKNOWN = "502 5.5.2 Command not recognized"
SEQUENCE = "503 5.5.1 Bad sequence of commands"
TOO_MANY = "452 4.5.3 Too many recipients"
TOO_LARGE = "552 5.3.4 Message too big"
LINE_TOO_LONG = "500 5.5.0 Line too long"

_PATH = re.compile(r"<([^<>\s]*)>")


class LmtpSyntax(ValueError):
    """A command line that does not parse; `reply` is the answer."""

    def __init__(self, reply: str) -> None:
        super().__init__(reply)
        self.reply = reply


@dataclass(frozen=True)
class Command:
    """A command's verb (upper case), its address (MAIL, RCPT) and its parameters."""

    verb: str
    address: str = ""
    params: tuple[str, ...] = ()


def parse_path(text: str) -> tuple[str, tuple[str, ...]]:
    """`<address> [PARAM ...]` into the address ("" for `<>`) and the parameters."""
    match = _PATH.match(text.strip())
    if not match:
        raise LmtpSyntax(SYNTAX)
    rest = text.strip()[match.end() :]
    if rest and not rest.startswith(" "):
        raise LmtpSyntax(SYNTAX)
    return match.group(1), tuple(rest.split())


def parse_command(line: bytes) -> Command:
    """One command line (without its CRLF)."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        raise LmtpSyntax(SYNTAX) from None
    if any(c < " " or c == "\x7f" for c in text):
        raise LmtpSyntax(SYNTAX)
    upper = text.upper()
    for verb, prefix in (("MAIL", "MAIL FROM:"), ("RCPT", "RCPT TO:")):
        if upper.startswith(prefix):
            address, params = parse_path(text[len(prefix) :])
            if verb == "RCPT" and not address:
                raise LmtpSyntax(SYNTAX)
            return Command(verb, address, params)
    verb, _, rest = text.partition(" ")
    verb = verb.upper()
    if verb in ("LHLO", "DATA", "RSET", "NOOP", "QUIT"):
        if verb == "LHLO" and not rest.strip():
            raise LmtpSyntax(SYNTAX)
        return Command(verb)
    raise LmtpSyntax(UNKNOWN)


@dataclass
class DataReader:
    """Collects DATA lines up to the lone `.`: the message unstuffed, at most `limit` bytes
    kept (`too_large` says some were dropped)."""

    limit: int
    chunks: list[bytes] = field(default_factory=list)
    size: int = 0
    too_large: bool = False
    at_line_start: bool = True

    def feed(self, line: bytes) -> bool:
        """One line with its line end, or a piece of a long line; True at the end of the
        data."""
        start, self.at_line_start = self.at_line_start, line.endswith(b"\n")
        if start and line in (b".\r\n", b".\n"):
            return True
        if start and line.startswith(b"."):
            line = line[1:]
        self.size += len(line)
        if self.size > self.limit:
            self.too_large = True
            self.chunks.clear()
        elif not self.too_large:
            self.chunks.append(line)
        return False

    def message(self) -> bytes:
        return b"".join(self.chunks)


@dataclass
class Transaction:
    """What a session gathered for one message."""

    mail_from: str
    mail_params: tuple[str, ...]
    rcpts: list[str] = field(default_factory=list)


Deliver = Callable[[Transaction, bytes], list[str]]


def extensions(max_size: int) -> list[str]:
    """What LHLO offers: no PIPELINING (one command, one answer), SMTPUTF8 for addresses."""
    return ["8BITMIME", "ENHANCEDSTATUSCODES", f"SIZE {max_size}", "SMTPUTF8"]


def serve_session(
    rfile: BinaryIO, wfile: BinaryIO, name: str, max_size: int, deliver: Deliver
) -> None:
    """Answer LMTP commands until QUIT or end of input; `deliver` gives the replies, one per
    recipient, for each message received."""

    def send(*lines: str) -> None:
        wfile.write("".join(line + "\r\n" for line in lines).encode("utf-8"))
        wfile.flush()

    send(f"220 {name} LMTP chatmail-mxsend")
    transaction: Transaction | None = None
    greeted = False
    while True:
        line = rfile.readline(MAX_LINE + 2)
        if not line:
            return
        if not line.endswith(b"\n"):
            send(LINE_TOO_LONG)
            return
        try:
            command = parse_command(line.rstrip(b"\r\n"))
        except LmtpSyntax as exc:
            send(exc.reply)
            continue
        if command.verb == "QUIT":
            send("221 2.0.0 Bye")
            return
        if command.verb == "LHLO":
            greeted, transaction = True, None
            offered = [name, *extensions(max_size)]
            send(*(f"250-{item}" for item in offered[:-1]), f"250 {offered[-1]}")
        elif command.verb in ("RSET", "NOOP"):
            if command.verb == "RSET":
                transaction = None
            send(OK)
        elif command.verb == "MAIL":
            if not greeted or transaction is not None:
                send(SEQUENCE)
            else:
                transaction = Transaction(command.address, command.params)
                send("250 2.1.0 Ok")
        elif command.verb == "RCPT":
            if transaction is None:
                send(SEQUENCE)
            elif len(transaction.rcpts) >= MAX_RECIPIENTS:
                send(TOO_MANY)
            else:
                transaction.rcpts.append(command.address)
                send("250 2.1.5 Ok")
        elif command.verb == "DATA":
            if transaction is None or not transaction.rcpts:
                send(SEQUENCE)
                continue
            send("354 End data with <CR><LF>.<CR><LF>")
            reader = DataReader(max_size)
            while True:
                data_line = rfile.readline(65536)
                if not data_line:
                    return  # the client went away: nothing was answered, nothing is done
                if reader.feed(data_line):
                    break
            if reader.too_large:
                replies = [TOO_LARGE] * len(transaction.rcpts)
            else:
                replies = deliver(transaction, reader.message())
            send(*replies)
            transaction = None
