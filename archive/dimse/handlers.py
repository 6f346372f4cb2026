"""Thin pynetdicom event handlers: translate events into calls to the archive.

Every service handler carries ``@dimse_errors``, the one place that turns an
``ArchiveError`` into its DIMSE status and anything else into a logged ``0xC000``-range
failure.
"""

from __future__ import annotations

import errno
import functools
import inspect
import logging
import os
import socket

from django.db import close_old_connections, connections
from pynetdicom import build_context, evt
from pynetdicom.sop_class import Verification

from ..errors import ArchiveError, Forbidden, OutOfResources
from ..services import StoreSession, store_file
from ..storage import get_storage
from . import queries, status
from .access import Access, decide, find_destination
from .contexts import (
    QUERY_RETRIEVE_SOP_CLASSES,
    STORAGE_SOP_CLASSES,
    information_model,
    storage_contexts_for,
)
from .files import encode_file_meta, write_part10
from .sending import stored_reference

log = logging.getLogger(__name__)

# The prefix each generator handler owes pynetdicom before (status, data set) pairs.
_PREFIX = {"C-FIND": 0, "C-GET": 1, "C-MOVE": 2}


def dimse_errors(service: str):
    """Answer an ``ArchiveError`` with its DIMSE status and anything else with a logged
    failure; for generator handlers, first yield whatever pynetdicom still expects
    (a sub-operation count, say) so that the status reaches the peer."""

    def failure(exc: Exception) -> int:
        if isinstance(exc, ArchiveError) and exc.dimse_status is not None:
            log.info("%s refused: %s (0x%04X)", service, exc.detail, exc.dimse_status)
            return exc.dimse_status
        log.exception("%s failed", service)
        return status.UNEXPECTED[service]

    def decorate(handler):
        if not inspect.isgeneratorfunction(handler):

            @functools.wraps(handler)
            def plain(event):
                try:
                    return handler(event)
                except Exception as exc:  # noqa: BLE001 - the DIMSE edge (STYLE.md section 5)
                    return failure(exc)

            return plain

        @functools.wraps(handler)
        def generator(event):
            yielded = 0
            try:
                for item in handler(event):
                    yielded += 1
                    yield item
            except Exception as exc:  # noqa: BLE001 - the DIMSE edge (STYLE.md section 5)
                code = failure(exc)
                if service == "C-MOVE" and yielded == 0:
                    yield None, None  # no destination yet: pynetdicom can only say 0xA801
                    return
                if yielded < _PREFIX[service]:
                    yield 1  # the sub-operation count pynetdicom waits for
                yield code, None

        return generator

    return decorate


# --- association life ---------------------------------------------------------------------


def on_conn_open(event) -> None:
    """TCP_NODELAY on every association socket, accepted or requested: without it Nagle's
    algorithm and delayed ACKs hold each small response back by about 40 ms."""
    sock = event.assoc.dul.socket.socket
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def on_requested(event) -> None:
    """Decide what the peer may do, and offer only those presentation contexts: a peer
    not allowed to query sees its query/retrieve contexts rejected."""
    close_old_connections()
    assoc = event.assoc
    calling = assoc.requestor.primitive.calling_ae_title
    access = decide(calling, assoc.requestor.address)
    assoc.vitrine_access = access
    if access.store and access.query:
        return
    refused = set()
    if not access.store:
        refused |= set(STORAGE_SOP_CLASSES)
    if not access.query:
        refused |= QUERY_RETRIEVE_SOP_CLASSES
    assoc.acceptor.supported_contexts = [
        cx for cx in assoc.acceptor.supported_contexts if cx.abstract_syntax not in refused
    ]
    log.info(
        "association from %s at %s: store %s, query %s",
        calling, assoc.requestor.address, access.store, access.query,
    )


def on_ended(event) -> None:
    """Give back this association thread's database connections."""
    connections.close_all()


def _access(event) -> Access:
    return getattr(event.assoc, "vitrine_access", Access(store=False, query=False))


def _require_query(event) -> None:
    if not _access(event).query:
        raise Forbidden(f"{event.assoc.requestor.ae_title} may not query or retrieve")


# --- services -----------------------------------------------------------------------------


@dimse_errors("C-ECHO")
def handle_echo(event) -> int:
    return status.SUCCESS


@dimse_errors("C-STORE")
def handle_store(event) -> int:
    """Write the data set as received, behind the file meta group, and store the file."""
    if not _access(event).store:
        raise Forbidden(f"{event.assoc.requestor.ae_title} may not store")
    request = event.request
    meta = encode_file_meta(
        request.AffectedSOPClassUID, request.AffectedSOPInstanceUID, event.context.transfer_syntax
    )
    temp = get_storage().incoming_file()
    try:
        with temp:
            digest = write_part10(temp, meta, request.DataSet.getbuffer())
    except OSError as exc:
        os.unlink(temp.name)
        if exc.errno == errno.ENOSPC:
            raise OutOfResources("the archive storage is full") from None
        raise
    store_file(
        temp.name, sha256=digest, received_from=event.assoc.requestor.ae_title, session=_store_session(event)
    )
    return status.SUCCESS


def _store_session(event) -> StoreSession:
    """One per association: its C-STOREs mostly share a study and a series."""
    session = getattr(event.assoc, "vitrine_store_session", None)
    if session is None:
        session = event.assoc.vitrine_store_session = StoreSession()
    return session


@dimse_errors("C-FIND")
def handle_find(event):
    _require_query(event)
    request = queries.parse_identifier(event.identifier, information_model(event.request.AffectedSOPClassUID))
    for identifier in queries.find(request, ae_title=event.assoc.acceptor.ae_title):
        if event.is_cancelled:
            yield status.CANCEL, None
            return
        yield status.PENDING, identifier


@dimse_errors("C-GET")
def handle_get(event):
    _require_query(event)
    request = queries.parse_identifier(event.identifier, information_model(event.request.AffectedSOPClassUID))
    instances = queries.select_instances(request)
    yield len(instances)
    yield from _sub_operations(event, instances)


@dimse_errors("C-MOVE")
def handle_move(event):
    destination = find_destination(event.move_destination)
    if destination is None:
        log.info("C-MOVE to unknown destination %r", event.move_destination)
        yield None, None  # pynetdicom answers 0xA801: Move Destination unknown
        return
    # pynetdicom reads these association arguments only after the count is yielded, so
    # the contexts can still be filled in from the selected instances below.
    association_args = {
        "contexts": [build_context(Verification)],
        "evt_handlers": [(evt.EVT_CONN_OPEN, on_conn_open)],
    }
    yield destination.host, destination.port, association_args
    _require_query(event)
    request = queries.parse_identifier(event.identifier, information_model(event.request.AffectedSOPClassUID))
    instances = queries.select_instances(request)
    if instances:
        association_args["contexts"] = storage_contexts_for(
            (i.sop_class_uid, i.transfer_syntax_uid) for i in instances
        )
    yield len(instances)
    yield from _sub_operations(event, instances)


def _sub_operations(event, instances: list[queries.StoredInstance]):
    storage = get_storage()
    for instance in instances:
        if event.is_cancelled:
            yield status.CANCEL, None
            return
        path = storage.path(instance.path)
        yield status.PENDING, stored_reference(path, instance.sop_class_uid, instance.sop_instance_uid)


HANDLERS = [
    (evt.EVT_CONN_OPEN, on_conn_open),
    (evt.EVT_REQUESTED, on_requested),
    (evt.EVT_RELEASED, on_ended),
    (evt.EVT_ABORTED, on_ended),
    (evt.EVT_C_ECHO, handle_echo),
    (evt.EVT_C_STORE, handle_store),
    (evt.EVT_C_FIND, handle_find),
    (evt.EVT_C_GET, handle_get),
    (evt.EVT_C_MOVE, handle_move),
]
