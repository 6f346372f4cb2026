"""Pure converters: curators' files in, DICOM Part 10 files out. No Django here.

The Django layer calls ``convert`` (dispatch by content) or one converter directly;
each takes a ``Target`` and returns ``OutputFile`` records. Names are resolved lazily
so that importing one converter does not import them all (pyvips, trimesh, openslide).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ConversionResult": "ingest.converters.base",
    "OutputFile": "ingest.converters.base",
    "Target": "ingest.converters.base",
    "make_uid_factory": "ingest.converters.base",
    "CONVERTERS": "ingest.converters.dispatch",
    "SNIFFERS": "ingest.converters.dispatch",
    "convert": "ingest.converters.dispatch",
    "sniff": "ingest.converters.dispatch",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'ingest.converters' has no attribute {name!r}")
