"""Pure converters: curators' files in, DICOM Part 10 files out. No Django here.

The Django layer calls ``convert`` (dispatch by content) or one converter directly;
each takes a ``Target`` and returns ``OutputFile`` records.
"""

from ingest.converters.base import ConversionResult, OutputFile, Target, make_uid_factory
from ingest.converters.dispatch import CONVERTERS, SNIFFERS, convert, sniff

__all__ = [
    "CONVERTERS",
    "SNIFFERS",
    "ConversionResult",
    "OutputFile",
    "Target",
    "convert",
    "make_uid_factory",
    "sniff",
]
