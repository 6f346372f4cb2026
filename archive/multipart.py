"""multipart/related, both ways, without holding a body in memory (RFC 2387, PS3.18 8.6).

``read_parts`` walks a request body from any readable stream and hands each part's
bytes to a sink as they arrive; ``write_parts`` yields a response body chunk by chunk.
Also here: parsing of media types and Accept headers. Pure: imports no Django.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from typing import BinaryIO, Callable, Iterable, Iterator, Protocol

from .errors import InvalidInput, PayloadTooLarge

CHUNK = 1 << 20
_MAX_HEADER_BYTES = 16 * 1024
_PARAM = re.compile(r';\s*([^=;\s]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)')


@dataclass(frozen=True)
class MediaType:
    """One media type with its parameters, names lower-cased."""

    type: str
    params: dict[str, str] = field(default_factory=dict)

    @property
    def q(self) -> float:
        try:
            return float(self.params.get("q", "1"))
        except ValueError:
            return 0.0

    def matches(self, offered: str) -> bool:
        """Does this (possibly wildcard) type accept the concrete type ``offered``?"""
        if self.type in ("*/*", offered):
            return True
        major, _, minor = self.type.partition("/")
        return minor == "*" and offered.startswith(major + "/")


def parse_media_type(value: str) -> MediaType:
    main, _, rest = value.partition(";")
    params = {}
    for name, raw in _PARAM.findall(";" + rest):
        raw = raw.strip()
        if raw.startswith('"') and raw.endswith('"'):
            raw = raw[1:-1].replace('\\"', '"')
        params[name.lower()] = raw
    return MediaType(main.strip().lower(), params)


def parse_accept(header: str) -> list[MediaType]:
    """The Accept header's media types, best first; an empty header accepts anything."""
    if not header.strip():
        return [MediaType("*/*")]
    types = [parse_media_type(part) for part in _split_accept(header) if part.strip()]
    return sorted((t for t in types if t.q > 0), key=lambda t: -t.q)


def _split_accept(header: str) -> list[str]:
    """Split on commas that are not inside quotes (type="application/dicom" has none, but
    transfer-syntax lists may)."""
    parts, current, quoted = [], [], False
    for char in header:
        if char == '"':
            quoted = not quoted
        if char == "," and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


class Sink(Protocol):
    def write(self, data: bytes) -> object: ...


@dataclass
class Part:
    headers: dict[str, str]

    @property
    def content_type(self) -> MediaType:
        return parse_media_type(self.headers.get("content-type", "application/octet-stream"))


def read_parts(
    stream: BinaryIO,
    boundary: str,
    open_sink: Callable[[Part], Sink],
    *,
    max_bytes: int,
    on_part_end: Callable[[Part, Sink], None],
) -> int:
    """Stream every part of a multipart body into sinks; return the number of parts.

    ``open_sink(part)`` is called when a part's headers have arrived, and
    ``on_part_end(part, sink)`` when its body is complete. Raises InvalidInput for a
    broken body and PayloadTooLarge past ``max_bytes``.
    """
    if not boundary or len(boundary) > 70:
        raise InvalidInput(f"the multipart boundary {boundary!r} is missing or too long")
    reader = _Buffered(stream, max_bytes)
    delimiter = b"--" + boundary.encode("latin-1")
    # The preamble ends with the first delimiter (RFC 2046 5.1.1).
    if not reader.skip_past(delimiter, allow_start=True):
        raise InvalidInput("the multipart body has no opening boundary")
    count = 0
    body_delimiter = b"\r\n" + delimiter
    while True:
        tail = reader.take(2)
        if tail == b"--":
            return count
        if tail != b"\r\n":
            raise InvalidInput("a multipart boundary is not followed by CRLF or '--'")
        part = Part(_parse_headers(reader.take_until(b"\r\n\r\n", _MAX_HEADER_BYTES)))
        sink = open_sink(part)
        if not reader.copy_until(body_delimiter, sink):
            raise InvalidInput("the multipart body ends inside a part: its closing boundary is missing")
        on_part_end(part, sink)
        count += 1


def _parse_headers(block: bytes) -> dict[str, str]:
    headers = {}
    for line in block.decode("latin-1").split("\r\n"):
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise InvalidInput(f"a multipart part header is malformed: {line[:80]!r}")
        headers[name.strip().lower()] = value.strip()
    return headers


class _Buffered:
    """A read-ahead buffer over the body. Bytes before ``pos`` are consumed; parts are
    handed to their sinks as views of the buffer, so a part's bytes are copied once, on
    their way in."""

    def __init__(self, stream: BinaryIO, max_bytes: int) -> None:
        self.stream, self.max_bytes = stream, max_bytes
        self.buffer = bytearray()
        self.pos = 0
        self.total = 0
        self.eof = False

    def _fill(self) -> bool:
        if self.eof:
            return False
        data = self.stream.read(CHUNK)
        if not data:
            self.eof = True
            return False
        self.total += len(data)
        if self.total > self.max_bytes:
            raise PayloadTooLarge(f"the request body is larger than the limit of {self.max_bytes} bytes")
        if self.pos:
            del self.buffer[: self.pos]
            self.pos = 0
        self.buffer += data
        return True

    def _give(self, sink: Sink, end: int) -> None:
        with memoryview(self.buffer) as whole, whole[self.pos : end] as view:
            sink.write(view)
        self.pos = end

    def take(self, n: int) -> bytes:
        while len(self.buffer) - self.pos < n and self._fill():
            pass
        if len(self.buffer) - self.pos < n:
            raise InvalidInput("the multipart body ends early: its closing boundary is missing")
        self.pos += n
        return bytes(self.buffer[self.pos - n : self.pos])

    def take_until(self, marker: bytes, limit: int) -> bytes:
        while (index := self.buffer.find(marker, self.pos)) < 0:
            if len(self.buffer) - self.pos > limit or not self._fill():
                raise InvalidInput("a multipart part's headers are missing or too long")
        data = bytes(self.buffer[self.pos : index])
        self.pos = index + len(marker)
        return data

    def skip_past(self, marker: bytes, allow_start: bool) -> bool:
        """Drop bytes up to and including ``marker`` standing at the start of a line."""
        start, dropped = self.pos, False
        while True:
            index = self.buffer.find(marker, start)
            if index >= 0:
                at_start = index == self.pos and not dropped and allow_start
                if at_start or self.buffer[index - 2 : index] == b"\r\n":
                    self.pos = index + len(marker)
                    return True
                start = index + 1
                continue
            cut = max(self.pos, len(self.buffer) - len(marker) - 2)
            dropped = dropped or cut > self.pos
            self.pos = cut
            if not self._fill():
                return False
            start = self.pos

    def copy_until(self, marker: bytes, sink: Sink) -> bool:
        """Copy bytes to ``sink`` up to ``marker``; drop the marker. False at end of input."""
        keep = len(marker) - 1
        while True:
            index = self.buffer.find(marker, self.pos)
            if index >= 0:
                self._give(sink, index)
                self.pos = index + len(marker)
                return True
            if len(self.buffer) - self.pos > keep:
                self._give(sink, len(self.buffer) - keep)
            if not self._fill():
                return False


def new_boundary() -> str:
    return uuid.uuid4().hex


def write_parts(
    boundary: str, parts: Iterable[tuple[str, Iterator[bytes] | bytes]]
) -> Iterator[bytes]:
    """Yield a multipart body: each part is (its Content-Type, its bytes or chunks)."""
    opening = f"--{boundary}\r\n".encode()
    for content_type, body in parts:
        yield opening + f"Content-Type: {content_type}\r\n\r\n".encode()
        if isinstance(body, bytes):
            yield body
        else:
            yield from body
        yield b"\r\n"
    yield f"--{boundary}--\r\n".encode()


def file_chunks(path: str, offset: int = 0, length: int | None = None, chunk: int = CHUNK) -> Iterator[bytes]:
    """A file's bytes (or a range of them) in chunks, read as they are sent."""
    with open(path, "rb", buffering=0) as fp:
        fp.seek(offset)
        remaining = length
        while remaining is None or remaining > 0:
            data = fp.read(chunk if remaining is None else min(chunk, remaining))
            if not data:
                return
            if remaining is not None:
                remaining -= len(data)
            yield data
