"""A small blocking DIMSE client for timing C-FIND round trips.

pynetdicom's requestor passes every message through two polling threads, which adds
milliseconds to each round trip on both sides of the comparison and hides the server's
own latency. This client does the same work in the calling thread: it negotiates one
presentation context with pynetdicom's PDU classes, then writes each request as
P-DATA-TF PDUs and reads the responses straight from the socket.
"""

from __future__ import annotations

import socket
import struct
from io import BytesIO

from pydicom.dataset import Dataset
from pydicom.uid import ImplicitVRLittleEndian
from pynetdicom.dsutils import decode, encode
from pynetdicom.pdu import A_ASSOCIATE_AC, A_ASSOCIATE_RQ
from pynetdicom.pdu_primitives import (
    A_ASSOCIATE,
    ImplementationClassUIDNotification,
    MaximumLengthNotification,
)
from pynetdicom.presentation import build_context

_PDV_HEADER = struct.Struct(">BBIIBB")
_PENDING = (0xFF00, 0xFF01)
CONTEXT_ID = 1


class DimseClient:
    """One association proposing one abstract syntax in implicit VR little endian."""

    def __init__(self, host: str, port: int, *, calling: str, called: str, abstract_syntax: str) -> None:
        self.sock = socket.create_connection((host, port), timeout=30)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._buffer = bytearray()
        self._message_id = 0
        self.abstract_syntax = abstract_syntax
        request = A_ASSOCIATE()
        request.application_context_name = "1.2.840.10008.3.1.1.1"
        request.calling_ae_title = calling
        request.called_ae_title = called
        context = build_context(abstract_syntax, [ImplicitVRLittleEndian])
        context.context_id = CONTEXT_ID
        request.presentation_context_definition_list = [context]
        length = MaximumLengthNotification()
        length.maximum_length_received = 0  # unlimited
        implementation = ImplementationClassUIDNotification()
        implementation.implementation_class_uid = "1.2.826.0.1.3680043.10.1561.1"
        request.user_information = [length, implementation]
        pdu = A_ASSOCIATE_RQ()
        pdu.from_primitive(request)
        self.sock.sendall(pdu.encode())
        kind, body = self._read_pdu()
        if kind != 0x02:
            raise ConnectionError(f"{called} did not accept the association (PDU type {kind:#04x})")
        accept = A_ASSOCIATE_AC()
        accept.decode(struct.pack(">BBI", kind, 0, len(body)) + body)  # pynetdicom wants the header too
        results = [item.result for item in accept.presentation_context]
        if results != [0]:
            raise ConnectionError(f"{called} rejected the presentation context: {results}")

    def find(self, query: Dataset) -> list[tuple[int, Dataset | None]]:
        """Send one C-FIND-RQ; return (status, identifier) of every response."""
        self._message_id += 1
        command = Dataset()
        command.AffectedSOPClassUID = self.abstract_syntax
        command.CommandField = 0x0020
        command.MessageID = self._message_id
        command.Priority = 0
        command.CommandDataSetType = 0x0001
        self._send(command, encode(query, True, True))
        responses = []
        while True:
            response, identifier = self._receive()
            status = int(response.Status)
            responses.append((status, identifier))
            if status not in _PENDING:
                return responses

    def release(self) -> None:
        self.sock.sendall(b"\x05\x00\x00\x00\x00\x04\x00\x00\x00\x00")
        try:
            self._read_pdu()  # A-RELEASE-RP
        finally:
            self.sock.close()

    # --- wire ---------------------------------------------------------------------

    def _send(self, command: Dataset, data: bytes | None) -> None:
        encoded = encode(command, True, True)
        group_length = Dataset()
        group_length.CommandGroupLength = len(encoded)
        encoded = encode(group_length, True, True) + encoded
        out = bytearray()
        for payload, control in ((encoded, 0x03), (data, 0x02)):
            if payload:
                out += _PDV_HEADER.pack(0x04, 0, len(payload) + 6, len(payload) + 2, CONTEXT_ID, control)
                out += payload
        self.sock.sendall(out)

    def _receive(self) -> tuple[Dataset, Dataset | None]:
        """One whole DIMSE message: its command set and its data set, if any."""
        command, data = bytearray(), bytearray()
        command_done = data_done = False
        has_data = None
        while not command_done or (has_data and not data_done):
            kind, body = self._read_pdu()
            if kind != 0x04:
                raise ConnectionError(f"expected P-DATA-TF, got PDU type {kind:#04x}")
            offset = 0
            while offset < len(body):
                (length,) = struct.unpack_from(">I", body, offset)
                control = body[offset + 5]
                fragment = body[offset + 6 : offset + 4 + length]
                offset += 4 + length
                if control & 0x01:
                    command += fragment
                    if control & 0x02:
                        command_done = True
                        response = decode(BytesIO(bytes(command)), True, True)
                        has_data = int(response.CommandDataSetType) != 0x0101
                else:
                    data += fragment
                    data_done = bool(control & 0x02)
        identifier = decode(BytesIO(bytes(data)), True, True) if has_data else None
        return response, identifier

    def _read_pdu(self) -> tuple[int, bytes]:
        header = self._read_exactly(6)
        kind, _, length = struct.unpack(">BBI", header)
        return kind, self._read_exactly(length)

    def _read_exactly(self, count: int) -> bytes:
        while len(self._buffer) < count:
            chunk = self.sock.recv(max(65536, count - len(self._buffer)))
            if not chunk:
                raise ConnectionError("the peer closed the connection")
            self._buffer += chunk
        out = bytes(self._buffer[:count])
        del self._buffer[:count]
        return out
