"""DICOM JSON (PS3.18 F.2) straight from a data set's raw elements. Pure: imports no Django.

Every stored instance has its metadata rendered once, at store time, and that is on
the hot path of C-STORE and STOW-RS. Converting each element to a pydicom value and
back costs more than the rest of the store together, so the common VRs are decoded
here from their raw bytes. Whatever this module does not handle simply (sequences,
ambiguous VRs, big endian, character sets with escape sequences) goes through
pydicom's own converter, and the tests check both agree.
"""

from __future__ import annotations

import base64
import struct
from typing import Any, Callable

import pydicom
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement

BULK_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN"})
_TEXT_MULTI = frozenset({"AE", "AS", "CS", "DA", "DT", "LO", "SH", "TM", "UI", "UC"})
_TEXT_SINGLE = frozenset({"LT", "ST", "UT", "UR"})
_NUMBERS = {"US": "H", "SS": "h", "UL": "I", "SL": "i", "FL": "f", "FD": "d", "SV": "q", "UV": "Q"}
# Character sets whose bytes decode with one Python codec (PS3.3 C.12.1.1.2).
_CODECS = {"": "latin_1", "ISO_IR 6": "latin_1", "ISO_IR 100": "latin_1", "ISO_IR 192": "utf_8"}

BulkHandler = Callable[[int], str]


def dataset_to_json(
    ds: pydicom.Dataset, bulk_uri: BulkHandler, threshold: int, little: bool | None = None
) -> dict[str, Any]:
    """The data set as DICOM JSON; bulk values over ``threshold`` bytes become BulkDataURIs.

    Parameters
    ----------
    ds : a data set read with ``defer_size`` at most ``threshold``, so that large values
        are never read.
    bulk_uri : tag → the BulkDataURI to write for it.
    threshold : the largest binary value written inline (InlineBinary).
    """
    charset = ds.get_item(0x00080005)
    charset_text = _charset(charset)
    codec = _CODECS.get(charset_text)
    if little is None:
        little = getattr(ds, "original_encoding", (None, True))[1] is not False
    out: dict[str, Any] = {}
    for tag in ds.keys():
        raw = ds.get_item(tag, keep_deferred=True)  # bulk values are never read
        key = f"{int(tag):08X}"
        vr = raw.VR or _dictionary_vr(tag)
        length = raw.length if hasattr(raw, "length") else len(raw.value or b"") if vr in BULK_VRS else 0
        if tag == 0x7FE00010 or (vr in BULK_VRS and (length > threshold or length == 0xFFFFFFFF)):
            out[key] = {"vr": _bulk_vr(ds, vr), "BulkDataURI": bulk_uri(int(tag))}
            continue
        value = getattr(raw, "value", None)
        fast = isinstance(value, bytes) and little and codec is not None and not isinstance(raw, DataElement)
        converted = None
        if fast and _simple(vr):
            try:
                converted = _fast(vr, value, codec)
            except ValueError:  # a malformed number: let pydicom have its say
                converted = None
        out[key] = converted if converted is not None else _slow(ds, tag, bulk_uri, threshold, little)
    return out


def _charset(raw) -> str:
    if raw is None:
        return ""
    value = raw.value
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    if isinstance(value, (list, tuple, pydicom.multival.MultiValue)):
        return "\\".join(str(v) for v in value) if len(value) != 1 else str(value[0])
    return str(value or "").strip()


def _bulk_vr(ds: pydicom.Dataset, vr: str) -> str:
    """An implicit-VR bulk value's VR: OW for pixels wider than a byte (PS3.5 8.1.2)."""
    if " or " not in vr:
        return vr
    return "OW" if int(ds.get("BitsAllocated", 8) or 8) > 8 else "OB"


def _dictionary_vr(tag) -> str:
    try:
        return dictionary_VR(tag)
    except KeyError:
        return "UN"


def _simple(vr: str) -> bool:
    return vr in _TEXT_MULTI or vr in _TEXT_SINGLE or vr in _NUMBERS or vr in ("DS", "IS", "PN", "AT") or vr in BULK_VRS


def _fast(vr: str, value: bytes, codec: str) -> dict[str, Any]:
    if vr in BULK_VRS:
        return {"vr": vr, "InlineBinary": base64.b64encode(value).decode()} if value else {"vr": vr}
    if vr in _NUMBERS:
        code = _NUMBERS[vr]
        count = len(value) // struct.calcsize(code)
        numbers = list(struct.unpack(f"<{count}{code}", value[: count * struct.calcsize(code)]))
        return {"vr": vr, "Value": numbers} if numbers else {"vr": vr}
    if vr == "AT":
        pairs = struct.unpack(f"<{len(value) // 2}H", value)
        tags = [f"{pairs[i]:04X}{pairs[i + 1]:04X}" for i in range(0, len(pairs) - 1, 2)]
        return {"vr": vr, "Value": tags} if tags else {"vr": vr}
    text = value.decode(codec, "replace")
    if vr in _TEXT_SINGLE:
        text = text.rstrip("\0 ")
        return {"vr": vr, "Value": [text]} if text else {"vr": vr}
    text = text.rstrip("\0 ")
    if not text:
        return {"vr": vr}
    parts = [p.strip(" \0") if vr != "PN" else p.rstrip(" \0") for p in text.split("\\")]
    if vr == "DS":
        return {"vr": vr, "Value": [float(p) if p else None for p in parts]}
    if vr == "IS":
        return {"vr": vr, "Value": [int(p) if p else None for p in parts]}
    if vr == "PN":
        return {"vr": vr, "Value": [_person_name(p) if p else None for p in parts]}
    return {"vr": vr, "Value": [p if p else None for p in parts]}


def _person_name(text: str) -> dict[str, str]:
    """PS3.18 F.2.2: the alphabetic, ideographic and phonetic groups, separated by '='."""
    groups = text.split("=")
    names = {}
    for key, group in zip(("Alphabetic", "Ideographic", "Phonetic"), groups):
        if group:
            names[key] = group
    return names


def _slow(ds: pydicom.Dataset, tag, bulk_uri: BulkHandler, threshold: int, little: bool) -> dict[str, Any]:
    element = ds[tag]
    if element.VR == "SQ":
        return {"vr": "SQ", "Value": [dataset_to_json(item, bulk_uri, threshold, little) for item in element.value]}
    return element.to_json_dict(
        bulk_data_element_handler=lambda e: bulk_uri(int(e.tag)), bulk_data_threshold=threshold
    )
