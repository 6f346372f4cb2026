"""Vitrine's DIMSE SCP: one pynetdicom application entity serving verification, storage
and query/retrieve (find, get, move) under the patient and study root models.

``start_scp`` runs it in background threads (tests, the benchmark); ``serve`` runs it in
the foreground (``manage.py dicomscp``).
"""

from __future__ import annotations

import gc
import logging
import signal
import threading

from django.conf import settings
from pynetdicom import AE, _config
from pynetdicom.transport import ThreadedAssociationServer

from . import contexts, reactor, sending
from .contexts import supported_contexts
from .handlers import HANDLERS

log = logging.getLogger(__name__)

# Largest P-DATA PDU we accept: large enough that a 512 KiB slice arrives in a few PDUs.
MAXIMUM_PDU_BYTES = 1 << 20
MAXIMUM_ASSOCIATIONS = 32
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def build_ae(ae_title: str | None = None) -> AE:
    """The application entity, with every supported context and no requested ones."""
    # pynetdicom decodes every command set and identifier just to log it (at DEBUG and
    # INFO). Vitrine logs what matters itself. These switches are process-wide.
    _config.LOG_HANDLER_LEVEL = "none"
    _config.LOG_REQUEST_IDENTIFIERS = False
    _config.LOG_RESPONSE_IDENTIFIERS = False
    contexts.install()
    sending.install()
    reactor.install()
    ae = AE(ae_title=ae_title or settings.VITRINE_AE_TITLE)
    ae.maximum_pdu_size = MAXIMUM_PDU_BYTES
    ae.maximum_associations = MAXIMUM_ASSOCIATIONS
    for context in supported_contexts():
        # add_supported_context, unlike assigning the list, keeps the role selection.
        ae.add_supported_context(
            context.abstract_syntax, context.transfer_syntax,
            scu_role=context.scu_role, scp_role=context.scp_role,
        )
    return ae


def start_scp(
    host: str | None = None, port: int | None = None, ae_title: str | None = None
) -> ThreadedAssociationServer:
    """Start the SCP in background threads and return its server.

    Port 0 picks a free port: read it back from ``server.server_address``. Stop the
    server with ``server.shutdown()``.
    """
    ae = build_ae(ae_title)
    address = (host or settings.VITRINE_DICOM_HOST, settings.VITRINE_DICOM_PORT if port is None else port)
    server = ae.start_server(address, block=False, evt_handlers=list(HANDLERS))
    log.info("DICOM SCP %s listening on %s:%d", ae.ae_title, *server.server_address[:2])
    return server


def serve(host: str | None = None, port: int | None = None, ae_title: str | None = None) -> None:
    """Run the SCP until SIGINT or SIGTERM, then stop accepting associations and let
    the open ones finish.

    Both signals get handlers of our own, which only set a flag. pynetdicom's blocking
    mode relies on Python's default SIGINT handler raising KeyboardInterrupt, and a
    process started in the background by a non-interactive shell (``cmd &``, as CI
    runners and init scripts do) inherits SIGINT as ignored: Python then installs no
    handler, and the server never stopped.
    """
    server = start_scp(host, port, ae_title)
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda signum, frame: stop.set()) for sig in _STOP_SIGNALS}
    # Everything loaded so far lives as long as the process: keep it out of the garbage
    # collector's full passes, which otherwise pause an association for tens of ms.
    gc.freeze()
    try:
        while not stop.wait(0.5):
            pass
    finally:
        server.shutdown()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
