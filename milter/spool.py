"""A message body buffer: in memory up to a threshold, then in an unlinked temporary file."""

from __future__ import annotations

import io
import mmap
import tempfile
from typing import BinaryIO


class Spool:
    """Collects body chunks; `view()` returns bytes (small) or a read-only mmap (spooled)."""

    def __init__(self, threshold: int, directory: str | None = None) -> None:
        self.threshold = threshold
        self.directory = directory or None
        self.size = 0
        self._memory: io.BytesIO | None = io.BytesIO()
        self._file: BinaryIO | None = None
        self._map: mmap.mmap | None = None

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self._memory is not None:
            if self.size <= self.threshold:
                self._memory.write(chunk)
                return
            self._file = tempfile.TemporaryFile(  # noqa: SIM115 (closed in close())
                dir=self.directory, prefix="chatmail-milter-"
            )
            self._file.write(self._memory.getbuffer())
            self._memory = None
        assert self._file is not None
        self._file.write(chunk)

    def view(self) -> bytes | mmap.mmap:
        """The whole body; valid until `close()`."""
        if self._memory is not None:
            return self._memory.getvalue()
        assert self._file is not None
        self._file.flush()
        if self.size == 0:
            return b""
        if self._map is None:
            self._map = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ)
        return self._map

    def close(self) -> None:
        """Release memory and the temporary file."""
        if self._map is not None:
            self._map.close()
            self._map = None
        if self._file is not None:
            self._file.close()
            self._file = None
        self._memory = None
