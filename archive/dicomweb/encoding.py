"""DICOM JSON (PS3.18 F.2) for index rows and STOW-RS answers. Pure: imports no Django."""

from __future__ import annotations

import json
from typing import Any, Iterable

from ..indexing import BULK_PLACEHOLDER
from ..query import ATTRIBUTES

RETRIEVE_URL = "00081190"


def json_value(vr: str, value: Any) -> dict[str, Any]:
    """One attribute as DICOM JSON; ``None`` and "" give an attribute with no Value."""
    if value is None or value == "":
        return {"vr": vr}
    if vr == "PN":
        return {"vr": vr, "Value": [{"Alphabetic": str(v)} for v in str(value).split("\\")]}
    if vr in ("IS", "US", "UL", "SL", "SS"):
        return {"vr": vr, "Value": [int(value)]}
    if vr == "CS" and "\\" in str(value):
        return {"vr": vr, "Value": str(value).split("\\")}
    return {"vr": vr, "Value": [str(value)]}


def row_encoder(paths: dict[str, str]):
    """A function from one ``.values()`` row to a DICOM JSON object, for keyword → path.

    The tag and VR of each column are looked up once, not once per row: a QIDO listing
    of a large series encodes thousands of attributes.
    """
    columns = [(path, f"{ATTRIBUTES[k].tag:08X}", ATTRIBUTES[k].vr) for k, path in paths.items()]

    def encode(row: dict[str, Any]) -> dict[str, Any]:
        return {tag: json_value(vr, row[path]) for path, tag, vr in columns}

    return encode


def dumps(objects: Iterable[dict[str, Any]]) -> bytes:
    return json.dumps(list(objects), separators=(",", ":")).encode()


def with_bulk_base(metadata_json: str, instance_url: str) -> str:
    """Point every stored BulkDataURI at this server's bulkdata route for the instance."""
    return metadata_json.replace(BULK_PLACEHOLDER, f"{instance_url}/bulkdata/")


def stow_response(
    retrieve_url: str | None,
    stored: list[dict[str, str]],
    failed: list[dict[str, Any]],
) -> dict[str, Any]:
    """The STOW-RS answer (PS3.18 10.5.3): ReferencedSOPSequence and FailedSOPSequence.

    ``stored`` items have sop_class, sop_uid and url; ``failed`` items have sop_class,
    sop_uid, status (the FailureReason) and reason (text, given in the Warning header
    and in a FailureDescription-like text value).
    """
    out: dict[str, Any] = {}
    if retrieve_url:
        out[RETRIEVE_URL] = {"vr": "UR", "Value": [retrieve_url]}
    if stored:
        out["00081199"] = {
            "vr": "SQ",
            "Value": [
                {
                    "00081150": json_value("UI", s["sop_class"]),
                    "00081155": json_value("UI", s["sop_uid"]),
                    RETRIEVE_URL: {"vr": "UR", "Value": [s["url"]]},
                }
                for s in stored
            ],
        }
    if failed:
        out["00081198"] = {
            "vr": "SQ",
            "Value": [
                {
                    "00081150": json_value("UI", f.get("sop_class") or ""),
                    "00081155": json_value("UI", f.get("sop_uid") or ""),
                    "00081197": {"vr": "US", "Value": [f["status"]]},
                    # FailureReason is the normative code; the words go in Text Value.
                    "0040A160": {"vr": "UT", "Value": [f["reason"]]},
                }
                for f in failed
            ],
        }
    return out
