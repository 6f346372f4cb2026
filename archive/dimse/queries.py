"""C-FIND answers and C-GET/C-MOVE selections, through the shared matcher in
``archive.query`` (PS3.4 C.4.1 and C.6). Answers come from the index only; no stored file
is opened.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from pydicom.datadict import keyword_for_tag
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset

from ..errors import InvalidInput
from ..query import ATTRIBUTES, LEVELS, build_query, row_attributes, value_paths
from .status import FIND_IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS

# PS3.4 C.6.1.1 and C.6.2.1: the levels of each information model, and the unique key
# of each level.
MODEL_LEVELS = {
    "PATIENT_ROOT": ("PATIENT", "STUDY", "SERIES", "IMAGE"),
    "STUDY_ROOT": ("STUDY", "SERIES", "IMAGE"),
}
UNIQUE_KEYS = {
    "PATIENT": "PatientID",
    "STUDY": "StudyInstanceUID",
    "SERIES": "SeriesInstanceUID",
    "IMAGE": "SOPInstanceUID",
}
# Return keys the index answers without an ATTRIBUTES entry.
_CONSTANT_KEYS = {"InstanceAvailability": "ONLINE"}


@dataclass(frozen=True)
class Request:
    """A C-FIND/C-GET/C-MOVE identifier, parsed."""

    level: str
    keys: dict[str, str]  # keyword → match value, for the attributes the index knows
    requested: tuple[tuple[int, str], ...]  # (tag, VR) of every element asked for


@dataclass(frozen=True)
class StoredInstance:
    path: str
    sop_class_uid: str
    sop_instance_uid: str
    transfer_syntax_uid: str


def parse_identifier(identifier: Dataset, model: str) -> Request:
    """Read the level and the keys of an identifier.

    Raises
    ------
    InvalidInput
        No QueryRetrieveLevel, or one the information model does not have (0xA900).
    """
    level = str(identifier.get("QueryRetrieveLevel", "") or "").strip().upper()
    if level not in MODEL_LEVELS[model]:
        raise InvalidInput(
            f"QueryRetrieveLevel {level!r} is not a level of the {model.replace('_', ' ').lower()} "
            f"information model {MODEL_LEVELS[model]}",
            dimse_status=FIND_IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS,
        )
    keys: dict[str, str] = {}
    requested: list[tuple[int, str]] = []
    for element in identifier:
        if element.tag.group == 0x0002 or element.tag in (0x00080005, 0x00080052):
            continue
        requested.append((int(element.tag), element.VR))
        if element.keyword in ATTRIBUTES and element.VR != "SQ":
            keys[element.keyword] = _match_value(element)
    return Request(level=level, keys=keys, requested=tuple(requested))


def _match_value(element: DataElement) -> str:
    value = element.value
    if value is None:
        return ""
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return "\\".join(str(v) for v in value)
    return str(value).strip()


def find(request: Request, *, ae_title: str) -> Iterator[Dataset]:
    """One response identifier per matching row: the keys asked for (empty when the index
    does not hold them), the level's unique key, and QueryRetrieveLevel."""
    level = request.level
    tags = dict(request.requested)  # tag → VR of the response's elements
    required = [UNIQUE_KEYS[each] for each in LEVELS[: LEVELS.index(level) + 1]]
    if level == "IMAGE":
        required.append("SOPClassUID")
    for keyword in required:
        tags.setdefault(ATTRIBUTES[keyword].tag, ATTRIBUTES[keyword].vr)
    keywords = {tag: keyword_for_tag(tag) for tag in tags}
    paths = value_paths(level, keywords.values())
    rows = build_query(level, _keys_at_or_above(request)).values(*set(paths.values()))
    for row in rows.iterator():
        values = row_attributes(row, paths)
        response = Dataset()
        response.QueryRetrieveLevel = level
        for tag, vr in sorted(tags.items()):
            keyword = keywords[tag]
            value = values.get(keyword) if keyword in values else _constant(keyword, ae_title)
            response.add(DataElement(tag, vr, _element_value(keyword, vr, value)))
        if _needs_utf8(response):
            response.SpecificCharacterSet = "ISO_IR 192"
        yield response


def select_instances(request: Request) -> list[StoredInstance]:
    """The stored instances a C-GET or C-MOVE names, in series and instance order.

    Raises
    ------
    InvalidInput
        The identifier lacks the unique key of its level (0xA900): a retrieve must say
        exactly what it wants, never everything.
    """
    unique = UNIQUE_KEYS[request.level]
    if not request.keys.get(unique, "").strip("*"):
        raise InvalidInput(
            f"a {request.level} level retrieve needs {unique}",
            dimse_status=FIND_IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS,
        )
    query = build_query("IMAGE", _keys_at_or_above(request))
    rows = query.order_by("series__series_number", "series_id", "instance_number", "pk").values_list(
        "path", "sop_class_uid", "sop_uid", "transfer_syntax_uid"
    )
    return [StoredInstance(*row) for row in rows]


def _keys_at_or_above(request: Request) -> dict[str, str]:
    allowed = LEVELS[: LEVELS.index(request.level) + 1]
    return {k: v for k, v in request.keys.items() if ATTRIBUTES[k].level in allowed}


def _constant(keyword: str, ae_title: str):
    if keyword == "RetrieveAETitle":
        return ae_title
    return _CONSTANT_KEYS.get(keyword)


def _element_value(keyword: str, vr: str, value):
    if value is None or value == "":
        return None
    if keyword == "ModalitiesInStudy" and isinstance(value, str):
        return value.split("\\")
    if vr in ("US", "UL", "SS", "SL"):
        return int(value)
    return value if isinstance(value, int) and vr == "IS" else str(value)


def _needs_utf8(ds: Dataset) -> bool:
    for element in ds:
        if element.VR in ("PN", "LO", "SH", "LT", "ST", "UT", "UC") and element.value is not None:
            texts = element.value if element.VM > 1 else [element.value]
            if any(not str(text).isascii() for text in texts):
                return True
    return False
