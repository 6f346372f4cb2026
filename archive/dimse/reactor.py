"""Event-driven reactors for pynetdicom associations.

pynetdicom runs two threads per association and both poll: the DUL thread checks the
socket and its queues, then sleeps 1 ms when there was nothing to do; the association
thread sleeps 1 ms before every look at its DIMSE queue. A request and its response
cross both threads several times, so a C-FIND round trip or a C-STORE costs a few
milliseconds of sleeping on top of the work.

``install`` keeps pynetdicom's state machine, PDU codecs and service classes, and only
changes how the two threads wait:

- the DUL thread blocks in ``select`` on the association socket and on a wake-up pipe
  that is written whenever the user side queues a primitive for it;
- the association thread blocks on an event that the DUL thread sets after every state
  machine action (which is when anything reaches the DIMSE or ACSE queues).

Both waits still time out every ``TICK`` seconds so that pynetdicom's timers (ARTIM,
network idle) and kill flags are seen as before.
"""

from __future__ import annotations

import logging
import os
import queue
import select
import socket
import struct
import threading
from io import BytesIO

from pynetdicom import _config, evt
from pynetdicom.association import Association
from pynetdicom.dimse import _RQ_TO_MESSAGE, _RSP_TO_MESSAGE, DIMSEServiceProvider
from pynetdicom.dimse_messages import _COMMAND_SET_KEYWORDS
from pynetdicom.dimse_primitives import C_ECHO, C_FIND, C_GET, C_MOVE, C_STORE
from pynetdicom.dsutils import encode
from pynetdicom.dul import DULServiceProvider
from pynetdicom.pdu import A_ABORT_RQ
from pynetdicom.pdu_primitives import P_DATA
from pynetdicom.transport import AssociationSocket

log = logging.getLogger(__name__)

# Longest a reactor waits without looking at its timers and kill flags.
TICK = 0.05

_pynetdicom_dul_init = DULServiceProvider.__init__
_pynetdicom_dul_send = DULServiceProvider._send
_pynetdicom_send_msg = DIMSEServiceProvider.send_msg
_pynetdicom_receive_primitive = DIMSEServiceProvider.receive_primitive
_pynetdicom_send_pdu = DULServiceProvider.send_pdu
_pynetdicom_kill_dul = DULServiceProvider.kill_dul
_pynetdicom_association_init = Association.__init__
_pynetdicom_kill = Association.kill


class _Wakeup:
    """A pipe that a DUL thread can ``select`` on together with its socket."""

    def __init__(self) -> None:
        self.read_fd, self.write_fd = os.pipe()
        os.set_blocking(self.read_fd, False)
        os.set_blocking(self.write_fd, False)
        self.closed = False

    def set(self) -> None:
        if self.closed:
            return
        try:
            os.write(self.write_fd, b"\0")
        except (BlockingIOError, OSError):
            pass  # full (a wake-up is already pending) or closed meanwhile

    def drain(self) -> None:
        try:
            while os.read(self.read_fd, 4096):
                pass
        except (BlockingIOError, OSError):
            pass

    def close(self) -> None:
        self.closed = True
        for fd in (self.read_fd, self.write_fd):
            try:
                os.close(fd)
            except OSError:
                pass


class _Checkpoint(threading.Event):
    """The association reactor's pause checkpoint (pynetdicom's ``_reactor_checkpoint``).

    Whoever clears it wants the reactor parked on it before touching the DIMSE queue
    themselves (``send_c_*`` waits for ``_is_paused``), so clearing it also wakes the
    reactor, which then blocks here instead of waiting out its tick.
    """

    def __init__(self, attention: threading.Event) -> None:
        super().__init__()
        self.set()
        self._attention = attention

    def clear(self) -> None:
        super().clear()
        self._attention.set()


def _wait_for_io(dul: DULServiceProvider, wakeup: _Wakeup) -> None:
    """Block until the peer sends something, the user queues a primitive, or a tick."""
    transport = dul.socket
    sock = getattr(transport, "socket", None)
    watched = [wakeup.read_fd]
    if sock is not None and getattr(transport, "_is_connected", False):
        pending = getattr(sock, "pending", None)  # TLS may hold decrypted bytes
        if pending is not None and pending():
            return
        watched.append(sock)
    try:
        select.select(watched, [], [], TICK)
    except (OSError, ValueError):
        # The socket closed under us; pynetdicom's own check turns that into Evt17.
        return
    wakeup.drain()


def _run_dul_reactor(self: DULServiceProvider) -> None:
    """The DUL thread: same order of work as pynetdicom's loop, waiting in select."""
    wakeup = self._vitrine_wakeup
    self._idle_timer.start()
    try:
        while True:
            if not self.assoc._dul_ready.is_set():
                self.assoc._dul_ready.set()
            if self._kill_thread:
                break
            if self.artim_timer.expired:
                self.event_queue.put("Evt18")
            try:
                # Either encode and send one primitive or read and decode one PDU.
                if self._process_recv_primitive():
                    pass
                elif self._is_transport_event():
                    self._idle_timer.restart()
            except Exception:  # as pynetdicom does: abort at once
                log.exception("DIMSE transport failed, aborting the association")
                abort = A_ABORT_RQ()
                abort.source = 0x02
                abort.reason_diagnostic = 0x00
                self.socket.send(abort.encode())  # a closed socket reports Evt17 itself
                self.assoc.is_aborted = True
                self.assoc.is_established = False
                self.assoc._kill = True
                self._kill_thread = True
                self.assoc._vitrine_attention.set()
                return
            try:
                event = self.event_queue.get(block=False)
            except queue.Empty:
                _wait_for_io(self, wakeup)
                continue
            self.state_machine.do_action(event)
            # Whatever the action produced for the user side is queued by now.
            self.assoc._vitrine_attention.set()
    finally:
        self.assoc._vitrine_attention.set()
        wakeup.close()


def _run_association_reactor(self: Association) -> None:
    """The association (acceptor or requestor) thread, woken by the DUL thread.

    The checks are pynetdicom's, in its order: serve a complete DIMSE message, answer
    a release request, notice an abort, notice the DUL thread's end, and the network
    timeout.
    """
    attention = self._vitrine_attention
    self._is_paused = False
    while not self._kill:
        attention.wait(TICK)
        attention.clear()

        # ``send_c_*`` on another thread pauses this loop here (pynetdicom's protocol).
        self._is_paused = True
        self._reactor_checkpoint.wait()
        self._is_paused = False

        context_id, msg = self.dimse.get_msg(block=False)
        if msg:
            # More may be queued behind it: look again without waiting.
            attention.set()
            self._serve_request(msg, context_id)

        if self.is_established and self.acse.is_release_requested():
            self.acse.send_release(is_response=True)
            log.debug("association released by the peer")
            self.is_released = True
            self.is_established = False
            evt.trigger(self, evt.EVT_RELEASED, {})
            self.kill()
            return

        if self.acse.is_aborted():
            self.dul.receive_pdu(wait=False)  # so that EVT_ACSE_RECV fires
            self.is_aborted = True
            self.is_established = False
            evt.trigger(self, evt.EVT_ABORTED, {})
            self.kill()
            return

        if not self.dul.is_alive():
            self.kill()
            return

        if self.dul.idle_timer_expired():
            log.error("network timeout on the association with %s", self.requestor.ae_title)
            if self.network_timeout_response == "A-RELEASE":
                self._is_paused = True
                self._reactor_checkpoint.wait()
                self.release()
                self._is_paused = False
            else:
                self.abort()
            self.kill()
            return


def _dul_init(self: DULServiceProvider, assoc: Association) -> None:
    _pynetdicom_dul_init(self, assoc)
    self._vitrine_wakeup = _Wakeup()
    self._vitrine_send_lock = threading.Lock()


def _association_init(self: Association, *args, **kwargs) -> None:
    self._vitrine_attention = threading.Event()
    _pynetdicom_association_init(self, *args, **kwargs)
    self._reactor_checkpoint = _Checkpoint(self._vitrine_attention)


def _recv(self: AssociationSocket, nr_bytes: int) -> bytearray:
    """Read ``nr_bytes`` into one buffer, as few system calls as the kernel allows
    (pynetdicom reads 4 KiB at a time and appends); fewer on a closed connection."""
    buffer = bytearray(nr_bytes)
    view = memoryview(buffer)
    nr_read = 0
    while nr_read < nr_bytes:
        count = self.socket.recv_into(view[nr_read:])
        if not count:
            del view
            del buffer[nr_read:]
            break
        nr_read += count
    return buffer


def _send_pdu(self: DULServiceProvider, primitive) -> None:
    _pynetdicom_send_pdu(self, primitive)
    self._vitrine_wakeup.set()


def _kill_dul(self: DULServiceProvider) -> None:
    _pynetdicom_kill_dul(self)
    self._vitrine_wakeup.set()


def _stop_dul(self: DULServiceProvider) -> bool:
    """Stop the DUL thread if the connection is closed (state Sta1); True if stopped."""
    if self.state_machine.current_state != "Sta1":
        return False
    self._kill_thread = True
    self._vitrine_wakeup.set()
    if threading.current_thread() is not self and self.is_alive():
        self.join()
    return True


def _kill(self: Association) -> None:
    self._vitrine_attention.set()
    _pynetdicom_kill(self)


# --- writing P-DATA from the sending thread -------------------------------------------
#
# pynetdicom hands every P-DATA-TF PDU of a message to the DUL thread through a queue
# and its state machine, one PDU per loop, encoding each by concatenation. For a 512 KiB
# instance sent to a peer with 16 KiB PDUs that is 32 trips through the DUL thread. In
# the data transfer state (Sta6) sending P-DATA changes no state (DT-1), so the thread
# that owns the message writes its PDUs to the socket itself, in one ``sendmsg`` of
# headers and slices of the data, under a lock that the DUL thread's own sends share.

# P-DATA-TF PDU header and its single PDV item header (PS3.8 9.3.5): PDU type, reserved,
# PDU length, item length, presentation context ID, message control header.
_PDATA_HEADER = struct.Struct(">BBIIBB")
_COMMAND, _LAST = 0x01, 0x02
_IOV_MAX = 512


def write_message(
    dul: DULServiceProvider, context_id: int, command: bytes, data, maximum_pdu: int
) -> None:
    """Write one DIMSE message (an encoded command set and optional data set bytes)
    as P-DATA-TF PDUs no larger than the peer's ``maximum_pdu`` (0: unlimited).

    Raises ``ConnectionError`` when the connection fails; the DUL thread is told, as
    pynetdicom's own send does (Evt17).
    """
    buffers: list = []
    _fragments(buffers, context_id, memoryview(command), _COMMAND, maximum_pdu)
    if data is not None and len(data):
        _fragments(buffers, context_id, memoryview(data).cast("B"), 0, maximum_pdu)
    sock = dul.socket.socket
    try:
        with dul._vitrine_send_lock:
            _send_all(sock, buffers)
    except OSError as exc:
        dul.event_queue.put("Evt17")
        dul._vitrine_wakeup.set()
        raise ConnectionError(f"sending to the peer failed: {exc}") from exc
    dul._idle_timer.restart()


def _fragments(buffers: list, context_id: int, view: memoryview, kind: int, maximum_pdu: int) -> None:
    size = maximum_pdu - 6 if maximum_pdu else len(view)
    size = max(size, 1)
    for start in range(0, len(view), size):
        piece = view[start : start + size]
        control = kind | (_LAST if start + size >= len(view) else 0)
        buffers.append(_PDATA_HEADER.pack(0x04, 0, len(piece) + 6, len(piece) + 2, context_id, control))
        buffers.append(piece)


def _send_all(sock: socket.socket, buffers: list) -> None:
    index = 0
    while index < len(buffers):
        batch = buffers[index : index + _IOV_MAX]
        sent = sock.sendmsg(batch)
        # Skip the buffers sent whole; keep the unsent tail of a partly sent one.
        for buffer in batch:
            length = len(buffer)
            if sent >= length:
                sent -= length
                index += 1
                continue
            buffers[index] = memoryview(buffer)[sent:]
            break


def can_write_directly(dul: DULServiceProvider) -> bool:
    """Whether P-DATA may bypass the DUL thread now: data transfer state, nothing
    queued for the DUL before it, and a plain TCP socket (TLS goes through pynetdicom)."""
    transport = dul.socket
    sock = getattr(transport, "socket", None)
    return (
        dul.state_machine.current_state == "Sta6"
        and not dul.to_provider_queue.queue
        and type(sock) is socket.socket
    )


# --- DIMSE-C command sets without pydicom -------------------------------------------
#
# pynetdicom turns each primitive into a pydicom Dataset and encodes it twice (once for
# the group length): about half a millisecond per message, a C-FIND answer or a C-GET
# sub-operation being two messages. The command sets of the DIMSE-C services hold only
# UIDs, AE titles, a comment and unsigned shorts in implicit VR little endian
# (PS3.7 9.3), which are written here directly.

_COMMAND_FIELDS = {C_STORE: 0x0001, C_FIND: 0x0020, C_GET: 0x0010, C_MOVE: 0x0021, C_ECHO: 0x0030}
_DATA_KEYWORDS = {C_STORE: "DataSet", C_FIND: "Identifier", C_GET: "Identifier", C_MOVE: "Identifier"}
# keyword → (element number in group 0000, VR)
_COMMAND_ELEMENTS = {
    "AffectedSOPClassUID": (0x0002, "UI"),
    "CommandField": (0x0100, "US"),
    "MessageID": (0x0110, "US"),
    "MessageIDBeingRespondedTo": (0x0120, "US"),
    "MoveDestination": (0x0600, "AE"),
    "Priority": (0x0700, "US"),
    "CommandDataSetType": (0x0800, "US"),
    "Status": (0x0900, "US"),
    "ErrorComment": (0x0902, "LO"),
    "AffectedSOPInstanceUID": (0x1000, "UI"),
    "NumberOfRemainingSuboperations": (0x1020, "US"),
    "NumberOfCompletedSuboperations": (0x1021, "US"),
    "NumberOfFailedSuboperations": (0x1022, "US"),
    "NumberOfWarningSuboperations": (0x1023, "US"),
    "MoveOriginatorApplicationEntityTitle": (0x1030, "AE"),
    "MoveOriginatorMessageID": (0x1031, "US"),
}
_ELEMENT_HEADER = struct.Struct("<HHI")
_KEYWORDS_BY_NUMBER = {number: (keyword, vr) for keyword, (number, vr) in _COMMAND_ELEMENTS.items()}
_PRIMITIVES_BY_FIELD = {field: cls for cls, field in _COMMAND_FIELDS.items()}


def command_set(primitive, has_data: bool) -> bytes | None:
    """The encoded command set of a DIMSE-C request or response primitive, or None when
    it holds something only pynetdicom encodes (an Offending Element, say)."""
    command_field = _COMMAND_FIELDS.get(type(primitive))
    if command_field is None:
        return None
    is_response = primitive.MessageIDBeingRespondedTo is not None
    name = f"C-{type(primitive).__name__[2:]}-{'RSP' if is_response else 'RQ'}"
    values = {"CommandField": command_field | (0x8000 if is_response else 0),
              "CommandDataSetType": 0x0001 if has_data else 0x0101}
    elements = []
    for keyword in _COMMAND_SET_KEYWORDS[name]:
        if keyword == "CommandGroupLength":
            continue
        value = values[keyword] if keyword in values else getattr(primitive, keyword, None)
        if value is None:
            continue
        if keyword not in _COMMAND_ELEMENTS:
            return None
        number, vr = _COMMAND_ELEMENTS[keyword]
        if vr == "US":
            encoded = struct.pack("<H", int(value))
        else:
            text = value.decode("ascii") if isinstance(value, bytes) else str(value)
            encoded = text.encode("ascii" if vr != "LO" else "latin_1")
            if len(encoded) % 2:
                encoded += b"\0" if vr == "UI" else b" "
        elements.append((number, encoded))
    elements.sort()
    body = b"".join(_ELEMENT_HEADER.pack(0x0000, number, len(v)) + v for number, v in elements)
    return _ELEMENT_HEADER.pack(0x0000, 0x0000, 4) + struct.pack("<I", len(body)) + body


def read_command_set(encoded: bytes) -> dict[str, int | str] | None:
    """keyword → value of an encoded DIMSE-C command set, or None when it holds an
    element this reader does not know (pynetdicom then decodes the message)."""
    values: dict[str, int | str] = {}
    offset = 0
    while offset + 8 <= len(encoded):
        group, number, length = _ELEMENT_HEADER.unpack_from(encoded, offset)
        value = encoded[offset + 8 : offset + 8 + length]
        offset += 8 + length
        if group != 0x0000 or len(value) != length:
            return None
        if number == 0x0000:
            continue
        known = _KEYWORDS_BY_NUMBER.get(number)
        if known is None:
            return None
        keyword, vr = known
        if vr == "US":
            if length != 2:
                return None
            values[keyword] = struct.unpack("<H", value)[0]
        else:
            values[keyword] = value.decode("latin_1").rstrip("\0 ").lstrip(" ")
    return values if offset == len(encoded) else None


def _data_follows(encoded: bytes) -> bool:
    """Whether a command set announces a data set: Command Data Set Type other than
    0x0101 (PS3.7 E.1)."""
    offset = 0
    while offset + 8 <= len(encoded):
        group, number, length = _ELEMENT_HEADER.unpack_from(encoded, offset)
        if (group, number, length) == (0x0000, 0x0800, 2):
            return encoded[offset + 8 : offset + 10] != b"\x01\x01"
        offset += 8 + length
    return False


def _primitive_from(command: dict[str, int | str], context_id: int, data: BytesIO):
    """The pynetdicom primitive of a decoded DIMSE-C message, or None to let pynetdicom
    build it (C-CANCEL, DIMSE-N, anything unusual)."""
    cls = _PRIMITIVES_BY_FIELD.get(int(command.get("CommandField", 0)) & 0x7FFF)
    if cls is None:
        return None
    primitive = cls()
    try:
        for keyword, value in command.items():
            if keyword not in ("CommandField", "CommandDataSetType"):
                setattr(primitive, keyword, value)
    except (AttributeError, TypeError, ValueError):
        return None
    keyword = _DATA_KEYWORDS.get(cls)
    if keyword is not None:
        data.seek(0)
        setattr(primitive, keyword, data)
    primitive._context_id = context_id
    primitive._dataset_path = None
    primitive._dataset_file = None
    return primitive


class _Incoming:
    """A DIMSE message being assembled from P-DATA fragments."""

    def __init__(self) -> None:
        self.command = bytearray()
        self.fields: dict[str, int | str] | None = None
        self.data = BytesIO()
        self.context_id = 0


def _receive_primitive(self: DIMSEServiceProvider, primitive: P_DATA) -> None:
    """pynetdicom's ``receive_primitive``, with DIMSE-C command sets read directly.

    Messages this reader does not handle are handed to pynetdicom whole, as one P-DATA,
    so that it decodes and queues them as always.
    """
    incoming = self.__dict__.get("_vitrine_incoming")
    if incoming is None:
        if self.message is not None or _config.STORE_RECV_CHUNKED_DATASET or self.assoc.get_handlers(
            evt.EVT_DIMSE_RECV
        ):
            _pynetdicom_receive_primitive(self, primitive)
            return
        incoming = self._vitrine_incoming = _Incoming()
    for context_id, value in primitive.presentation_data_value_list:
        if incoming is None:  # the next message starts within the same P-DATA
            incoming = self._vitrine_incoming = _Incoming()
        control = value[0]
        incoming.context_id = context_id
        if control & 0x01:
            incoming.command += value[1:]
            if control & 0x02:
                command = bytes(incoming.command)
                incoming.fields = read_command_set(command)
                if incoming.fields is not None:
                    follows = incoming.fields.get("CommandDataSetType", 0x0101) != 0x0101
                else:  # pynetdicom decodes it, but the data set is ours to collect
                    follows = _data_follows(command)
                if not follows:
                    _finish(self, incoming)
                    incoming = None
        else:
            incoming.data.write(value[1:])
            if control & 0x02:
                _finish(self, incoming)
                incoming = None


def _finish(self: DIMSEServiceProvider, incoming: _Incoming) -> None:
    self._vitrine_incoming = None
    message = None
    if incoming.fields is not None:
        message = _primitive_from(incoming.fields, incoming.context_id, incoming.data)
    if message is None:
        whole = P_DATA()
        whole.presentation_data_value_list.append((incoming.context_id, b"\x03" + bytes(incoming.command)))
        data = incoming.data.getvalue()
        if data:
            whole.presentation_data_value_list.append((incoming.context_id, b"\x02" + data))
        _pynetdicom_receive_primitive(self, whole)
        return
    self.msg_queue.put((incoming.context_id, message))


def _send_msg(self: DIMSEServiceProvider, primitive, context_id: int) -> None:
    if not can_write_directly(self.dul):
        _pynetdicom_send_msg(self, primitive, context_id)
        return
    # Nobody wants the message object, and the data set (if any) is in memory.
    if not self.assoc.get_handlers(evt.EVT_DIMSE_SENT) and getattr(primitive, "_dataset_path", None) is None:
        keyword = _DATA_KEYWORDS.get(type(primitive))
        stream = getattr(primitive, keyword, None) if keyword else None
        data = stream.getvalue() if stream is not None else b""
        command = command_set(primitive, has_data=bool(data))
        if command is not None:
            write_message(self.dul, context_id, command, data, self.maximum_pdu_size)
            return
    table = _RQ_TO_MESSAGE if primitive.MessageIDBeingRespondedTo is None else _RSP_TO_MESSAGE
    message = table[primitive.__class__]()
    message.primitive_to_message(primitive)
    message.context_id = context_id
    evt.trigger(self.assoc, evt.EVT_DIMSE_SENT, {"message": message})
    if message._data_set_path is not None:
        path, offset = message._data_set_path
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read()
    else:
        data = message.data_set.getvalue() if message.data_set is not None else None
    write_message(self.dul, context_id, encode(message.command_set, True, True), data, self.maximum_pdu_size)


def _dul_send(self: DULServiceProvider, pdu) -> None:
    with self._vitrine_send_lock:
        _pynetdicom_dul_send(self, pdu)


def install() -> None:
    """Switch every pynetdicom association in this process to the waiting reactors
    (idempotent)."""
    DULServiceProvider.__init__ = _dul_init  # type: ignore[method-assign]
    DULServiceProvider.run_reactor = _run_dul_reactor  # type: ignore[method-assign]
    DULServiceProvider.send_pdu = _send_pdu  # type: ignore[method-assign]
    DULServiceProvider.kill_dul = _kill_dul  # type: ignore[method-assign]
    DULServiceProvider.stop_dul = _stop_dul  # type: ignore[method-assign]
    DULServiceProvider._send = _dul_send  # type: ignore[method-assign]
    DIMSEServiceProvider.send_msg = _send_msg  # type: ignore[method-assign]
    DIMSEServiceProvider.receive_primitive = _receive_primitive  # type: ignore[method-assign]
    AssociationSocket.recv = _recv  # type: ignore[method-assign]
    Association.__init__ = _association_init  # type: ignore[method-assign]
    Association._run_reactor = _run_association_reactor  # type: ignore[method-assign]
    Association.kill = _kill  # type: ignore[method-assign]
