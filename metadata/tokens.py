"""Push device tokens of one account: validation and the store's rules (pure).

A token is opaque to the relay (the client encrypts it to the notification service's key).
An account may have several devices, so several tokens, the last set last; a client re-sends its
token byte for byte, so setting a known token again only refreshes its time. At most
`max_tokens` are kept (the oldest go first); a token not set again for `max_age` seconds is
forgotten. On disk: one `<unix time>\\t<token>` line per token.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_TOKEN_BYTES = 4096


class TokenError(ValueError):
    """A token the relay does not store; the message says why (no token in it)."""


@dataclass(frozen=True)
class Token:
    value: str
    set_at: int


def validate(token: str) -> str:
    """Return `token` if it is 1 to 4096 visible ASCII characters (0x21-0x7E), else raise.

    No space: tokens are read back joined by single spaces.
    """
    if not token:
        raise TokenError("empty token")
    if len(token) > MAX_TOKEN_BYTES:
        raise TokenError(f"token longer than {MAX_TOKEN_BYTES} bytes")
    if not all("!" <= ch <= "~" for ch in token):
        raise TokenError("token is not visible ASCII (no space, no control character)")
    return token


def live(tokens: list[Token], now: int, max_age: int) -> list[Token]:
    """The tokens set within the last `max_age` seconds."""
    return [t for t in tokens if now - t.set_at < max_age]


def add(tokens: list[Token], value: str, now: int, max_tokens: int, max_age: int) -> list[Token]:
    """The store after setting `value` (validated) at `now`: expired tokens dropped, `value`
    once and newest, at most `max_tokens` (the oldest dropped)."""
    kept = [t for t in live(tokens, now, max_age) if t.value != value]
    kept.append(Token(value, now))  # in the order they were set, even if the clock stepped back
    return kept[-max_tokens:]


def remove(tokens: list[Token], value: str) -> list[Token]:
    return [t for t in tokens if t.value != value]


def joined(tokens: list[Token]) -> str:
    """The value GETMETADATA returns: the tokens joined by single spaces."""
    return " ".join(t.value for t in tokens)


def format_file(tokens: list[Token]) -> str:
    return "".join(f"{t.set_at}\t{t.value}\n" for t in tokens)


def parse_file(text: str) -> list[Token]:
    """Parse the file; lines that are not `<time>\\t<valid token>` are skipped (never raises)."""
    tokens = []
    for line in text.split("\n"):
        stamp, sep, value = line.partition("\t")
        if not sep or not stamp.isascii() or not stamp.isdigit() or len(stamp) > 15:
            continue
        try:
            tokens.append(Token(validate(value), int(stamp)))
        except TokenError:
            continue
    return tokens
