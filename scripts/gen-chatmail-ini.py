#!/usr/bin/env python3
"""Write the packaged conffile /etc/chatmail/chatmail.ini from the configuration schema.

Every option appears commented out at its default, under its section, with its one-line doc.
Usage: `.venv/bin/python scripts/gen-chatmail-ini.py [--check] [OUTPUT]` (OUTPUT defaults to
debian/chatmail.ini; `--check` exits 1 if OUTPUT differs from what the schema gives).
Run it with the virtualenv's interpreter from anywhere: it imports the installed package, and
its own folder (not the repository root) is what Python puts on sys.path.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path

from chatmail_services.config import SECTIONS, option_docs

DEFAULT_OUTPUT = Path(__file__).resolve().parents[1] / "debian" / "chatmail.ini"

HEADER = """\
# /etc/chatmail/chatmail.ini: configuration of chatmail-auth, chatmail-milter and
# chatmail-expire. Every option is shown commented out at its default; remove the "#" in
# front of a key to change it. Sizes take an optional K, M, G or T suffix (powers of 1024).
# Each service reads this file once, at start: restart a service after a change.
# A bad value stops the service at start (exit status 78). See chatmail.ini(5).
"""


def render() -> str:
    """The conffile text for the current schema."""
    out = [HEADER.rstrip("\n")]
    for section, cls in SECTIONS.items():
        out.append("")
        summary = (cls.__doc__ or "").split(":", 1)[-1].strip()
        out.append(f"# {summary}")
        out.append(f"[{section}]")
        for sec, key, default, doc in option_docs():
            if sec != section:
                continue
            out.append("")
            out.extend(textwrap.wrap(doc, 94, initial_indent="# ", subsequent_indent="# "))
            out.append(f"#{key} = {default}".rstrip())
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    parser.add_argument("output", nargs="?", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
        if current != text:
            print(f"{args.output} is out of date: run {sys.argv[0]}", file=sys.stderr)
            return 1
        return 0
    args.output.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
