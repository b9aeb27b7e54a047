#!/usr/bin/env python3
"""Write the packaged conffile and the option list of chatmail.ini(5) from the config schema.

The conffile (debian/chatmail.ini, installed as /etc/chatmail/chatmail.ini) lists every option
commented out at its default, under its section, with its one-line doc. The man page
docs/man/chatmail.ini.5 gets the same options between its BEGIN/END OPTIONS markers.
Usage: `.venv/bin/python scripts/gen-chatmail-ini.py [--check] [--ini PATH] [--man PATH]`;
`--check` writes nothing and exits 1 if a file differs from what the schema gives.
Run it with the virtualenv's interpreter from anywhere: it imports the installed package, and
its own folder (not the repository root) is what Python puts on sys.path.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path

from chatmail_services.config import SECTIONS, option_docs

REPO = Path(__file__).resolve().parents[1]
DEFAULT_INI = REPO / "debian" / "chatmail.ini"
DEFAULT_MAN = REPO / "docs" / "man" / "chatmail.ini.5"
MAN_BEGIN = '.\\" BEGIN OPTIONS\n'
MAN_END = '.\\" END OPTIONS\n'

HEADER = """\
# /etc/chatmail/chatmail.ini: configuration of chatmail-auth, chatmail-milter and
# chatmail-expire. Every option is shown commented out at its default; remove the "#" in
# front of a key to change it. Sizes take an optional K, M, G or T suffix (powers of 1024).
# Each service reads this file once, at start: restart a service after a change.
# A bad value stops the service at start (exit status 78). See chatmail.ini(5)."""


def _summary(cls: type) -> str:
    return (cls.__doc__ or "").split(":", 1)[-1].strip()


def render_ini() -> str:
    """The conffile text for the current schema."""
    out = [HEADER]
    for section, cls in SECTIONS.items():
        out += ["", f"# {_summary(cls)}", f"[{section}]"]
        for sec, key, default, doc in option_docs():
            if sec == section:
                out.append("")
                out += textwrap.wrap(doc, 94, initial_indent="# ", subsequent_indent="# ")
                out.append(f"#{key} = {default}".rstrip())
    return "\n".join(out) + "\n"


def _roff(text: str) -> str:
    """Escape text for a roff argument or text line (no leading control character)."""
    return text.replace("\\", "\\e").replace("-", "\\-").replace('"', "\\(dq")


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def render_man_options() -> str:
    """The roff lines between the markers of chatmail.ini(5)."""
    out = []
    for section, cls in SECTIONS.items():
        out += [f".SS [{section}]", "\\&" + _roff(_sentence(_summary(cls)))]
        for sec, key, default, doc in option_docs():
            if sec != section:
                continue
            if default.startswith("("):  # computed at start, e.g. "(this host's FQDN)"
                shown = _roff(default.strip("()"))
            else:
                shown = f"\\fB{_roff(default)}\\fR" if default else "empty"
            text = f"\\&{_roff(_sentence(doc))}. Default:\\ {shown}."
            out += [".TP", f".B {_roff(key)}", text]
    return "\n".join(out) + "\n"


def splice_man(page: str) -> str:
    """Return the man page with its option block replaced by the generated one."""
    head, sep, rest = page.partition(MAN_BEGIN)
    _old, sep2, tail = rest.partition(MAN_END)
    if not sep or not sep2:
        raise SystemExit("chatmail.ini.5: BEGIN/END OPTIONS markers missing")
    return head + MAN_BEGIN + render_man_options() + MAN_END + tail


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    parser.add_argument("--ini", type=Path, default=DEFAULT_INI, help="conffile to write")
    parser.add_argument("--man", type=Path, default=DEFAULT_MAN, help="man page to update")
    args = parser.parse_args(argv)
    wanted = {
        args.ini: render_ini(),
        args.man: splice_man(args.man.read_text(encoding="utf-8")),
    }
    stale = []
    for path, text in wanted.items():
        current = path.read_text(encoding="utf-8") if path.exists() else ""
        if current == text:
            continue
        if args.check:
            stale.append(path)
        else:
            path.write_text(text, encoding="utf-8")
    for path in stale:
        print(f"{path} is out of date: run scripts/gen-chatmail-ini.py", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
