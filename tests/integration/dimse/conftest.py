"""A Vitrine SCP on a free loopback port, and pynetdicom peers to drive it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from pynetdicom import AE, evt
from pynetdicom.sop_class import Verification

from archive.dimse.contexts import STORAGE_SOP_CLASSES
from archive.dimse.files import read_file_meta

SCU = "TESTSCU"
SCP = "VITRINE"


@dataclass
class RunningSCP:
    host: str
    port: int
    ae_title: str
    server: object


@pytest.fixture
def scp(transactional_db, archive_storage) -> Iterator[RunningSCP]:
    from archive.dimse.scp import start_scp

    server = start_scp("127.0.0.1", 0, SCP)
    host, port = server.server_address[:2]
    yield RunningSCP(host, port, SCP, server)
    server.shutdown()


@pytest.fixture
def registered(transactional_db):
    """The test SCU registered as a trusted querier."""
    from archive.models import Modality

    return Modality.objects.create(ae_title=SCU, host="127.0.0.1", port=1, description="tests")


def associate(scp: RunningSCP, contexts, ae_title: str = SCU, **kwargs):
    ae = AE(ae_title=ae_title)
    for context in contexts:
        if isinstance(context, str):
            ae.add_requested_context(context)
        else:
            ae.requested_contexts = [*ae.requested_contexts, context]
    assoc = ae.associate(scp.host, scp.port, ae_title=scp.ae_title, **kwargs)
    assert assoc.is_established, "the SCP refused the association"
    return assoc


def dataset_bytes(data: bytes) -> bytes:
    """A Part 10 file's data set, the file meta group (rebuilt by every receiver) left out."""
    return data[read_file_meta(data[:65536]).dataset_offset :]


@dataclass
class StorageSink:
    """A pynetdicom storage SCP that keeps what it receives, as received."""

    ae_title: str
    port: int
    received: dict[str, bytes] = field(default_factory=dict)
    server: object = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    on_receive: object = None  # called in the handler, while the sender is connected


@pytest.fixture
def sink() -> Iterator[StorageSink]:
    ae = AE(ae_title="SINK")
    for sop_class in STORAGE_SOP_CLASSES:
        ae.add_supported_context(sop_class, ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2"])
    ae.add_supported_context(Verification)
    store = StorageSink("SINK", 0)

    def on_store(event):
        with store.lock:
            store.received[event.request.AffectedSOPInstanceUID] = event.request.DataSet.getvalue()
        if store.on_receive is not None:
            store.on_receive()
        return 0x0000

    store.server = ae.start_server(("127.0.0.1", 0), block=False, evt_handlers=[(evt.EVT_C_STORE, on_store)])
    store.port = store.server.server_address[1]
    yield store
    store.server.shutdown()


def files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())
