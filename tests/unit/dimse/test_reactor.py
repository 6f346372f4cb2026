"""The direct P-DATA writer: PDUs that pynetdicom's own decoder reads back as the message."""

from __future__ import annotations

import queue
import socket
import threading

import pytest
from pynetdicom.pdu import P_DATA_TF

from archive.dimse import reactor


class _Dul:
    """What ``write_message`` needs of pynetdicom's DUL service provider."""

    def __init__(self, sock: socket.socket) -> None:
        self.socket = type("Transport", (), {"socket": sock})()
        self._vitrine_send_lock = threading.Lock()
        self._vitrine_wakeup = reactor._Wakeup()
        self.event_queue: queue.Queue = queue.Queue()
        self._idle_timer = type("Timer", (), {"restart": lambda self: None})()


def _read_pdus(sock: socket.socket, total: int) -> list[P_DATA_TF]:
    data = b""
    while len(data) < total:
        data += sock.recv(1 << 20)
    pdus, offset = [], 0
    while offset < len(data):
        length = int.from_bytes(data[offset + 2 : offset + 6], "big")
        pdu = P_DATA_TF()
        pdu.decode(data[offset : offset + 6 + length])
        pdus.append(pdu)
        offset += 6 + length
    return pdus


@pytest.mark.parametrize("maximum_pdu", [0, 16384, 1000])
def test_a_message_is_fragmented_within_the_peers_pdu_size(maximum_pdu):
    command, data = bytes(range(100)), bytes(range(256)) * 200  # 51 200 bytes
    left, right = socket.socketpair()
    with left, right:
        dul = _Dul(left)
        fragments = 1 + (1 if not maximum_pdu else -(-len(data) // (maximum_pdu - 6)))
        reader = threading.Thread(target=lambda: result.extend(_read_pdus(right, len(command) + len(data) + 12 * fragments)))
        result: list[P_DATA_TF] = []
        reader.start()
        reactor.write_message(dul, 5, command, memoryview(data), maximum_pdu)
        reader.join(10)
    values = [pdv for pdu in result for pdv in pdu.presentation_data_value_items]
    assert len(result) == len(values) == fragments
    assert all(pdv.presentation_context_id == 5 for pdv in values)
    if maximum_pdu:
        assert all(len(pdu.encode()) - 6 <= maximum_pdu for pdu in result)
    # Control header: bit 0 command, bit 1 last fragment (PS3.8 E.2).
    headers = [pdv.presentation_data_value[0] for pdv in values]
    assert headers == [0x03] + [0x00] * (fragments - 2) + [0x02]
    assert values[0].presentation_data_value[1:] == command
    assert b"".join(pdv.presentation_data_value[1:] for pdv in values[1:]) == data


def test_a_failed_send_tells_the_dul_and_raises():
    left, right = socket.socketpair()
    right.close()
    dul = _Dul(left)
    with left, pytest.raises(ConnectionError):
        reactor.write_message(dul, 1, b"x" * 10, memoryview(b"y" * (1 << 20)), 0)
    assert dul.event_queue.get_nowait() == "Evt17"


def _store_request():
    from io import BytesIO

    from pynetdicom.dimse_primitives import C_STORE

    request = C_STORE()
    request.MessageID, request.Priority = 7, 2
    request.AffectedSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    request.AffectedSOPInstanceUID = "1.2.3.4.5.6.7.8.9"  # odd length: padded with NUL
    request.MoveOriginatorApplicationEntityTitle, request.MoveOriginatorMessageID = "MOVER", 3
    request.DataSet = BytesIO(b"xx")
    return request


def _find_pending():
    from io import BytesIO

    from pynetdicom.dimse_primitives import C_FIND

    response = C_FIND()
    response.MessageIDBeingRespondedTo, response.Status = 7, 0xFF00
    response.AffectedSOPClassUID = "1.2.840.10008.5.1.4.1.2.2.1"
    response.Identifier = BytesIO(b"ab")
    return response


def _get_final():
    from pynetdicom.dimse_primitives import C_GET

    response = C_GET()
    response.MessageIDBeingRespondedTo, response.Status = 9, 0xB000
    response.AffectedSOPClassUID = "1.2.840.10008.5.1.4.1.2.2.3"
    response.ErrorComment = "one failed"
    response.NumberOfRemainingSuboperations, response.NumberOfCompletedSuboperations = 0, 4
    response.NumberOfFailedSuboperations, response.NumberOfWarningSuboperations = 1, 0
    return response


def _echo_request():
    from pynetdicom.dimse_primitives import C_ECHO

    request = C_ECHO()
    request.MessageID = 1
    request.AffectedSOPClassUID = "1.2.840.10008.1.1"
    return request


@pytest.mark.parametrize("make", [_store_request, _find_pending, _get_final, _echo_request])
def test_command_sets_match_pynetdicoms_encoding(make):
    from pynetdicom.dimse import _RQ_TO_MESSAGE, _RSP_TO_MESSAGE
    from pynetdicom.dsutils import encode

    primitive = make()
    table = _RQ_TO_MESSAGE if primitive.MessageIDBeingRespondedTo is None else _RSP_TO_MESSAGE
    message = table[type(primitive)]()
    message.primitive_to_message(primitive)
    has_data = message.command_set.CommandDataSetType != 0x0101
    assert reactor.command_set(primitive, has_data) == encode(message.command_set, True, True)


def test_a_command_set_with_an_offending_element_is_left_to_pynetdicom():
    response = _get_final()
    response.OffendingElement = [0x00100010]
    assert reactor.command_set(response, False) is None


@pytest.mark.parametrize("make", [_store_request, _find_pending, _get_final, _echo_request])
def test_command_sets_read_back_as_pynetdicom_reads_them(make):
    from io import BytesIO

    from pynetdicom.dimse_messages import DIMSEMessage
    from pynetdicom.pdu_primitives import P_DATA

    primitive = make()
    data = getattr(primitive, "DataSet", None) or getattr(primitive, "Identifier", None)
    encoded = reactor.command_set(primitive, has_data=data is not None)
    ours = reactor._primitive_from(reactor.read_command_set(encoded), 3, BytesIO())
    message = DIMSEMessage()
    fragment = P_DATA()
    fragment.presentation_data_value_list.append((3, b"\x03" + encoded))
    if data is not None:
        fragment.presentation_data_value_list.append((3, b"\x02" + data.getvalue()))
    assert message.decode_msg(fragment)
    theirs = message.message_to_primitive()
    assert type(ours) is type(theirs)
    for keyword in ("MessageID", "MessageIDBeingRespondedTo", "AffectedSOPClassUID", "AffectedSOPInstanceUID",
                    "Priority", "Status", "ErrorComment", "MoveOriginatorApplicationEntityTitle",
                    "MoveOriginatorMessageID", "NumberOfCompletedSuboperations", "NumberOfFailedSuboperations"):
        assert getattr(ours, keyword, None) == getattr(theirs, keyword, None), keyword
    assert reactor._data_follows(encoded) == (data is not None)


def test_an_unknown_command_element_is_left_to_pynetdicom():
    encoded = reactor.command_set(_echo_request(), has_data=False)
    odd = encoded + bytes.fromhex("0000 0109 0200 0000 0100".replace(" ", ""))  # (0000,0901) AT
    assert reactor.read_command_set(odd) is None
    assert reactor.read_command_set(encoded[:-1]) is None  # truncated
