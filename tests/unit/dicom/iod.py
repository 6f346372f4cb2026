"""Checks shared by the DICOM and ingest tests: IOD module presence via highdicom's tables."""

from __future__ import annotations

import io

import pydicom
from highdicom._standard_utils import (
    check_required_attributes,
    get_iod_module_map,
    get_sop_class_iod_map,
)
from pydicom.dataset import Dataset

from archive.dicom.part10 import write_dataset_file

# Modules we do not fill because their condition does not apply to our objects.
_SKIP_CONDITIONAL = {"clinical-trial-subject", "clinical-trial-study", "clinical-trial-series"}


def check_iod(ds: Dataset, *, conditional: tuple[str, ...] = ()) -> None:
    """Raise AttributeError if a Type 1/2 attribute of a mandatory module is missing."""
    iod = get_sop_class_iod_map()[ds.SOPClassUID]
    for module in get_iod_module_map()[iod]:
        if module["usage"] == "M" or module["key"] in conditional:
            # highdicom's table lists every macro a functional group may hold, each
            # with its own condition; only the top level of that module is checkable.
            nested = "functional-groups" not in module["key"]
            check_required_attributes(ds, module["key"], recursive=nested)


def roundtrip(ds: Dataset, tmp_path) -> Dataset:  # type: ignore[no-untyped-def]
    """Write ``ds`` as Part 10 with our writer, read it back with pydicom."""
    path = tmp_path / f"{ds.SOPInstanceUID}.dcm"
    meta = getattr(ds, "file_meta", None)
    syntax = meta.get("TransferSyntaxUID") if meta else None
    write_dataset_file(path, ds, **({"transfer_syntax_uid": syntax} if syntax else {}))
    return pydicom.dcmread(path)


def to_bytes(ds: Dataset) -> bytes:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()
