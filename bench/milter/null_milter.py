"""Baseline: a pymilter milter with the same callbacks as chatmail-milter that accepts all.

Usage: python null_milter.py unix:PATH   (run with a cwd that is not the repository root)
"""

from __future__ import annotations

import sys

import Milter


class NullMilter(Milter.Base):
    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    @Milter.decode("bytes")
    def envfrom(self, mail_from, *params):
        self.chunks = []
        self.login = self.getsymval("{auth_authen}")
        return Milter.CONTINUE

    @Milter.decode("bytes")
    def envrcpt(self, rcpt, *params):
        return Milter.CONTINUE

    @Milter.decode("bytes")
    def header(self, name, value):
        return Milter.CONTINUE

    def body(self, chunk):
        self.chunks.append(chunk)
        return Milter.CONTINUE

    def eom(self):
        self.chunks = []
        return Milter.ACCEPT


if __name__ == "__main__":
    Milter.factory = NullMilter
    Milter.runmilter("null-milter", sys.argv[1], 600, rmsock=not sys.argv[1].startswith("fd:"))
