"""Where each frame of a stored WSI level file lies, found once, read with ``pread``.

A pyramid's level 0 easily holds 20,000 frames.  The scan is ``archive.part10``'s (over
a memory map: it touches just the 8-byte item headers, all at once where the Basic
Offset Table gives one fragment per frame), as in
``archive.frames.layout_of``; but where that keeps the whole layout as objects for
WADO-RS, this keeps the offsets as two flat arrays (16 bytes a frame), which matters
for a slide held in every worker.
Stored files never change in place, so an index never goes stale.
"""

from __future__ import annotations

import os
from array import array

from archive import frames
from archive.part10 import frame_extents, scan_part10


class FrameIndex:
    """The frames of one stored Part 10 file.

    Parameters
    ----------
    path : str
        The stored file.
    metadata : dict
        Its DICOM JSON (for the size of native frames).
    number_of_frames : int
    """

    def __init__(self, path: str, metadata: dict, number_of_frames: int) -> None:
        self.path = path
        self.number_of_frames = number_of_frames
        self._metadata = metadata
        with open(path, "rb", buffering=0) as fp:
            layout = scan_part10(fp, os.fstat(fp.fileno()).st_size)
        self._deflated = layout.pixel_offset is None and not layout.encapsulated
        self._offsets = array("q")
        self._lengths = array("q")
        self._split: dict[int, list[tuple[int, int]]] = {}  # frames of several fragments
        if self._deflated:
            return
        if layout.encapsulated and len(layout.fragment_offsets) == number_of_frames and not layout.extended_offsets:
            # One fragment per frame, as every tiled level is: the arrays as they are.
            self._offsets, self._lengths = layout.fragment_offsets, layout.fragment_lengths
            return
        for index, extent in enumerate(frame_extents(layout, number_of_frames, frames.frame_size(metadata))):
            self._offsets.append(extent[0].offset if extent else 0)
            self._lengths.append(extent[0].length if extent else 0)
            if len(extent) > 1:
                self._split[index] = [(f.offset, f.length) for f in extent]

    @property
    def nbytes(self) -> int:
        """About what the index holds in memory."""
        return 16 * len(self._offsets) + 64 * sum(len(v) for v in self._split.values())

    def read(self, index: int) -> bytes:
        """The stored bytes of frame ``index`` (from 0)."""
        if self._deflated:  # inflate the file: archive.frames does it with pydicom
            return frames.read_frames(self.path, self._metadata, self.number_of_frames, [index + 1])[0]
        if not 0 <= index < len(self._offsets):
            raise IndexError(f"frame {index} is not in {self.path}, which has {len(self._offsets)}")
        parts = self._split.get(index) or [(self._offsets[index], self._lengths[index])]
        fd = os.open(self.path, os.O_RDONLY)
        try:
            return b"".join(os.pread(fd, length, offset) for offset, length in parts)
        finally:
            os.close(fd)
