"""C-STORE sub-operations (C-GET, C-MOVE) that send the stored bytes unchanged.

pynetdicom's C-GET and C-MOVE service classes take a ``Dataset`` per sub-operation and
hand it to ``Association.send_c_store``, which encodes it again. Vitrine yields a small
reference instead (``stored_reference``): a data set holding only the SOP Class and
Instance UIDs plus the stored file's path, and ``install`` teaches ``send_c_store`` to
send that file's data set bytes as they are, under a context with the stored transfer
syntax. If the peer accepted no such context but an uncompressed one, it gets a copy
with native pixel data (``archive.dicom.transcode``: compressed pixel data decoded,
pynetdicom converting between the native syntaxes). Otherwise the sub-operation fails,
which the C-GET/C-MOVE response counts and lists in Failed SOP Instance UID List.
"""

from __future__ import annotations

import logging
import threading
import time
from contextlib import contextmanager
from io import BytesIO
from pathlib import Path

from pydicom import config
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pynetdicom.association import Association
from pynetdicom.dimse_primitives import C_STORE

from ..dicom import transcode
from . import reactor
from .contexts import NATIVE_TRANSFER_SYNTAXES
from .files import read_file_meta

log = logging.getLogger(__name__)

_PATH_ATTRIBUTE = "_vitrine_stored_path"
_pynetdicom_send_c_store = Association.send_c_store


def stored_reference(path: str | Path, sop_class_uid: str, sop_instance_uid: str) -> Dataset:
    """A stand-in data set that ``send_c_store`` sends from the stored file at ``path``."""
    ds = Dataset()
    # The UIDs come from the index, checked when the file was stored: skip pydicom's
    # validation, which cost more than the rest of this function.
    ds[0x00080016] = DataElement(0x00080016, "UI", sop_class_uid, validation_mode=config.IGNORE)
    ds[0x00080018] = DataElement(0x00080018, "UI", sop_instance_uid, validation_mode=config.IGNORE)
    object.__setattr__(ds, _PATH_ATTRIBUTE, str(path))
    return ds


def send_stored(
    assoc: Association,
    path: str | Path,
    *,
    msg_id: int = 1,
    priority: int = 2,
    originator_aet: str | None = None,
    originator_id: int | None = None,
) -> Dataset:
    """Send one stored Part 10 file over ``assoc`` as a C-STORE request; return the
    response's status data set.

    Raises
    ------
    ValueError
        The peer accepted no context for the file's SOP class in the stored transfer
        syntax nor in an uncompressed one, or the pixel data cannot be decoded for it
        (``transcode.TranscodeError``).
    ConnectionError, TimeoutError
        The association has ended, or the peer did not answer in time (pynetdicom counts
        the sub-operation as failed, and the following ones fail at once).
    """
    data = Path(path).read_bytes()
    stored = read_file_meta(data[:65536])
    try:
        context = _context_for(assoc, stored.sop_class_uid, stored.transfer_syntax)
    except ValueError:
        # The peer takes none of the stored syntax: send a native copy, which pynetdicom
        # encodes in whichever native syntax the peer accepted.
        _native_context(assoc, stored.sop_class_uid, stored.transfer_syntax)
        log.info("converting %s from %s for the peer", stored.sop_instance_uid, stored.transfer_syntax)
        dataset = transcode.decompressed(data)
        with _reactor_held(assoc):
            return _pynetdicom_send_c_store(assoc, dataset, msg_id, priority, originator_aet, originator_id)

    request = C_STORE()
    request.MessageID = msg_id
    request.Priority = priority
    request.AffectedSOPClassUID = stored.sop_class_uid
    request.AffectedSOPInstanceUID = stored.sop_instance_uid
    request.MoveOriginatorApplicationEntityTitle = originator_aet
    request.MoveOriginatorMessageID = originator_id

    if not assoc.is_established:
        raise ConnectionError("the association to the peer has ended")
    with _reactor_held(assoc):
        if reactor.can_write_directly(assoc.dul):
            # The data set goes out as slices of the file's bytes, with no copy.
            reactor.write_message(
                assoc.dul, context.context_id, reactor.command_set(request, has_data=True),
                memoryview(data)[stored.dataset_offset :], assoc.dimse.maximum_pdu_size,
            )
        else:
            request.DataSet = BytesIO(data[stored.dataset_offset :])
            assoc.dimse.send_msg(request, context.context_id)
        _, response = assoc.dimse.get_msg(block=True)
    if response is None:
        assoc._handle_no_response()  # aborts the association
        raise TimeoutError(f"no C-STORE response for {stored.sop_instance_uid} within the DIMSE timeout")
    return assoc._check_received_status(response)


def _context_for(assoc: Association, sop_class_uid: str, transfer_syntax: str):
    """The accepted context for sending this SOP class in this transfer syntax.

    pynetdicom's lookup walks every accepted context, comparing UIDs it builds anew,
    on every call: a third of a C-GET's CPU when the peer proposed a hundred storage
    contexts, as getscu does. A series asks the same question 500 times; the accepted
    contexts do not change during an association, so the answer is kept on it.
    """
    cache = assoc.__dict__.setdefault("_vitrine_contexts", {})
    key = (sop_class_uid, transfer_syntax)
    if key not in cache:
        cache[key] = assoc._get_valid_context(sop_class_uid, transfer_syntax, "scu", allow_conversion=False)
    return cache[key]


def _native_context(assoc: Association, sop_class_uid: str, stored_syntax: str):
    """The accepted context for sending a decoded copy, or ValueError saying why none is."""
    for transfer_syntax in NATIVE_TRANSFER_SYNTAXES[:2]:  # explicit, then implicit VR little endian
        try:
            return _context_for(assoc, sop_class_uid, transfer_syntax)
        except ValueError:
            continue
    raise ValueError(
        f"the peer accepted no context for {sop_class_uid} in the stored transfer syntax "
        f"{stored_syntax} nor in an uncompressed one"
    )


@contextmanager
def _reactor_held(assoc: Association):
    """Keep the association's own reactor thread from taking our C-STORE response off
    the DIMSE queue while we wait for it.

    In a C-GET the caller *is* the reactor thread (handlers run in it), so there is
    nothing to hold. In a C-MOVE the reactor of the association to the destination runs
    in its own thread: clear its checkpoint, then wait until that thread actually blocks
    on it. pynetdicom's ``send_c_store`` waits for a ``_is_paused`` flag instead, which is
    still True for a moment after the reactor has passed the checkpoint; on a busy CPU
    the reactor then sometimes swallows the response ("Received unexpected C-STORE
    service message") and the sub-operation times out.
    """
    if threading.current_thread() is assoc:
        yield
        return
    checkpoint = assoc._reactor_checkpoint
    checkpoint.clear()
    try:
        # Event._cond._waiters: the threads blocked in wait() (CPython's threading).
        while not checkpoint._cond._waiters and assoc.is_alive() and not assoc._kill:
            time.sleep(0.00005)
        yield
    finally:
        checkpoint.set()


def _send_c_store(
    self: Association,
    dataset,
    msg_id: int = 1,
    priority: int = 2,
    originator_aet: str | None = None,
    originator_id: int | None = None,
) -> Dataset:
    path = getattr(dataset, _PATH_ATTRIBUTE, None) if isinstance(dataset, Dataset) else None
    if path is None:
        return _pynetdicom_send_c_store(self, dataset, msg_id, priority, originator_aet, originator_id)
    return send_stored(
        self, path, msg_id=msg_id, priority=priority,
        originator_aet=originator_aet, originator_id=originator_id,
    )


def install() -> None:
    """Make ``Association.send_c_store`` accept ``stored_reference`` data sets (idempotent)."""
    Association.send_c_store = _send_c_store  # type: ignore[method-assign]
