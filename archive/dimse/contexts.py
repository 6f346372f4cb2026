"""The presentation contexts Vitrine's SCP supports, and those it proposes for C-MOVE.

An acceptor's *supported* contexts are not subject to pynetdicom's limit of 128
*requested* contexts, so the SCP supports every storage SOP class with every transfer
syntax below. Pure: imports no Django.
"""

from __future__ import annotations

from collections.abc import Iterable

from pydicom import uid
from pynetdicom import AllStoragePresentationContexts, acse, build_context
from pynetdicom.presentation import PresentationContext
from pynetdicom.sop_class import (
    PatientRootQueryRetrieveInformationModelFind,
    PatientRootQueryRetrieveInformationModelGet,
    PatientRootQueryRetrieveInformationModelMove,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
    Verification,
)

# PS3.5 Section 10 and Annex A: what C-STORE accepts. Native syntaxes first, so that a
# peer proposing several gets explicit VR; a compressed syntax the peer lists first is
# taken as it is (``install``).
NATIVE_TRANSFER_SYNTAXES = (
    uid.ExplicitVRLittleEndian,
    uid.ImplicitVRLittleEndian,
    uid.DeflatedExplicitVRLittleEndian,
    uid.ExplicitVRBigEndian,
)
STORAGE_TRANSFER_SYNTAXES = NATIVE_TRANSFER_SYNTAXES + (
    uid.JPEGBaseline8Bit,
    uid.JPEGExtended12Bit,
    uid.JPEGLossless,  # process 14
    uid.JPEGLosslessSV1,  # process 14, selection value 1
    uid.JPEG2000Lossless,
    uid.JPEG2000,
    uid.JPEGLSLossless,
    uid.JPEGLSNearLossless,
    uid.RLELossless,
    uid.HTJ2KLossless,
    uid.HTJ2KLosslessRPCL,
    uid.HTJ2K,
)
QUERY_TRANSFER_SYNTAXES = (uid.ExplicitVRLittleEndian, uid.ImplicitVRLittleEndian)

# Storage SOP classes the archive's own builders produce, or museums send; named here so
# that they are supported even if a pynetdicom release lacks one (PS3.4 B.5).
REQUIRED_STORAGE_SOP_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.104.1": "Encapsulated PDF Storage",
    "1.2.840.10008.5.1.4.1.1.104.3": "Encapsulated STL Storage",
    "1.2.840.10008.5.1.4.1.1.104.4": "Encapsulated OBJ Storage",
    "1.2.840.10008.5.1.4.1.1.104.5": "Encapsulated MTL Storage",
    "1.2.840.10008.5.1.4.1.1.77.1.6": "VL Whole Slide Microscopy Image Storage",
    "1.2.840.10008.5.1.4.1.1.66.4": "Segmentation Storage",
    "1.2.840.10008.5.1.4.1.1.481.3": "RT Structure Set Storage",
    "1.2.840.10008.5.1.4.1.1.2": "CT Image Storage",
    "1.2.840.10008.5.1.4.1.1.7": "Secondary Capture Image Storage",
    "1.2.840.10008.5.1.4.1.1.77.1.4": "VL Photographic Image Storage",
}

STORAGE_SOP_CLASSES: tuple[str, ...] = tuple(
    dict.fromkeys(
        [str(cx.abstract_syntax) for cx in AllStoragePresentationContexts]
        + list(REQUIRED_STORAGE_SOP_CLASSES)
    )
)

FIND_SOP_CLASSES = {
    PatientRootQueryRetrieveInformationModelFind: "PATIENT_ROOT",
    StudyRootQueryRetrieveInformationModelFind: "STUDY_ROOT",
}
GET_SOP_CLASSES = {
    PatientRootQueryRetrieveInformationModelGet: "PATIENT_ROOT",
    StudyRootQueryRetrieveInformationModelGet: "STUDY_ROOT",
}
MOVE_SOP_CLASSES = {
    PatientRootQueryRetrieveInformationModelMove: "PATIENT_ROOT",
    StudyRootQueryRetrieveInformationModelMove: "STUDY_ROOT",
}
QUERY_RETRIEVE_SOP_CLASSES = frozenset({*FIND_SOP_CLASSES, *GET_SOP_CLASSES, *MOVE_SOP_CLASSES})
INFORMATION_MODELS = {**FIND_SOP_CLASSES, **GET_SOP_CLASSES, **MOVE_SOP_CLASSES}


def supported_contexts() -> list[PresentationContext]:
    """Every context the SCP accepts: verification, storage (either role, so that a
    C-GET requestor may act as the storage SCP) and query/retrieve."""
    contexts = [build_context(Verification, list(QUERY_TRANSFER_SYNTAXES))]
    for sop_class in STORAGE_SOP_CLASSES:
        context = build_context(sop_class, list(STORAGE_TRANSFER_SYNTAXES))
        context.scu_role = True
        context.scp_role = True
        contexts.append(context)
    for sop_class in sorted(QUERY_RETRIEVE_SOP_CLASSES):
        contexts.append(build_context(sop_class, list(QUERY_TRANSFER_SYNTAXES)))
    return contexts


def storage_contexts_for(pairs: Iterable[tuple[str, str]], limit: int = 128) -> list[PresentationContext]:
    """Contexts to propose for sending instances of the given (SOP class, transfer syntax)
    pairs: each stored syntax in a context of its own, so that the peer's choice can never
    force a conversion, plus an uncompressed fallback per class.

    Raises
    ------
    ValueError
        More contexts are needed than ``limit`` (pynetdicom's cap on proposals).
    """
    contexts: list[PresentationContext] = []
    by_class: dict[str, set[str]] = {}
    for sop_class, transfer_syntax in pairs:
        by_class.setdefault(str(sop_class), set()).add(str(transfer_syntax))
    for sop_class in sorted(by_class):
        for transfer_syntax in sorted(by_class[sop_class]):
            contexts.append(build_context(sop_class, [transfer_syntax]))
        if uid.ExplicitVRLittleEndian not in by_class[sop_class]:
            # Lets a peer that cannot take the stored syntax get a converted copy.
            contexts.append(build_context(sop_class, [uid.ExplicitVRLittleEndian, uid.ImplicitVRLittleEndian]))
    if len(contexts) > limit:
        raise ValueError(f"sending needs {len(contexts)} presentation contexts, more than {limit}")
    return contexts


def information_model(sop_class: str) -> str:
    """``PATIENT_ROOT`` or ``STUDY_ROOT`` for a query/retrieve SOP class UID."""
    return INFORMATION_MODELS[str(sop_class)]


_pynetdicom_negotiate = acse.negotiate_as_acceptor


def _negotiate_in_requestor_order(rq_contexts, ac_contexts, roles=None):
    """pynetdicom's negotiation, except that a context whose requestor lists a compressed
    syntax first (among those supported) gets that syntax.

    pynetdicom takes the first syntax in the *acceptor's* list, which puts the native
    ones first, explicit VR before implicit: every sender converts between those, and
    explicit VR keeps the value representations. A compressed syntax listed first is
    what the sender's data is in; taking an uncompressed one instead asks it to decode,
    which many cannot (dcmtk's storescu then fails the C-STORE). The archive keeps what
    it receives, so it takes the sender's compressed syntax; the same goes for a C-GET
    requestor's storage contexts.
    """
    accepted, reply_roles = _pynetdicom_negotiate(rq_contexts, ac_contexts, roles)
    requested = {cx.context_id: cx.transfer_syntax for cx in rq_contexts}
    supported = {cx.abstract_syntax: set(cx.transfer_syntax) for cx in ac_contexts}
    for context in accepted:
        if context.result == 0x00:
            wanted = requested[context.context_id]
            first = next(ts for ts in wanted if ts in supported[context.abstract_syntax])
            if first not in NATIVE_TRANSFER_SYNTAXES:
                context.transfer_syntax = [first]
    return accepted, reply_roles


def install() -> None:
    """Accept a compressed syntax that the requestor lists first (idempotent)."""
    acse.negotiate_as_acceptor = _negotiate_in_requestor_order
