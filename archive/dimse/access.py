"""Who may use which DIMSE service (``VITRINE_STORE_FROM``, ``VITRINE_QUERY_FROM``).

"any" admits every calling AE; "registered" only AE titles in the Modality table. With
``VITRINE_DIMSE_CHECK_HOST = True`` (off by default) the peer's address must also be an
address of the registered host.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

from django.conf import settings

from ..models import Modality

POLICIES = ("any", "registered")


@dataclass(frozen=True)
class Access:
    """What one association may do, decided once when it is requested."""

    store: bool
    query: bool


def decide(ae_title: str, address: str) -> Access:
    """The services a peer calling as ``ae_title`` from ``address`` may use."""
    registered: bool | None = None

    def allowed(policy: str, name: str) -> bool:
        nonlocal registered
        if policy not in POLICIES:
            raise ValueError(f"{name} must be one of {POLICIES}, got {policy!r}")
        if policy == "any":
            return True
        if registered is None:
            registered = is_registered(ae_title, address)
        return registered

    return Access(
        store=allowed(settings.VITRINE_STORE_FROM, "VITRINE_STORE_FROM"),
        query=allowed(settings.VITRINE_QUERY_FROM, "VITRINE_QUERY_FROM"),
    )


def is_registered(ae_title: str, address: str) -> bool:
    modality = Modality.objects.filter(ae_title=ae_title.strip()).first()
    if modality is None:
        return False
    if not getattr(settings, "VITRINE_DIMSE_CHECK_HOST", False):
        return True
    return address in _addresses(modality.host)


def _addresses(host: str) -> set[str]:
    try:
        return {info[4][0] for info in socket.getaddrinfo(host, None)}
    except OSError:
        return set()


def find_destination(ae_title: str) -> Modality | None:
    """The registered C-MOVE destination called ``ae_title``, if any."""
    return Modality.objects.filter(ae_title=ae_title.strip()).first()
