"""Where each frame of a stored WSI level file lies, found once, read with ``pread``.

A pyramid's level 0 easily holds 20,000 frames.  The scan is ``archive.part10``'s, as
in ``archive.frames.layout_of``, but this keeps the offsets as two flat arrays (16
bytes a frame), which matters for a slide held in every worker.  Where the Basic
Offset Table lays out one fragment per frame, the fragments are taken from the table
and each item header is checked when its frame is read: opening a level reads its
table, not a header per tile spread over the whole file (a page fault each, and a disk
read each where the file has left the page cache).
Stored files never change in place, so an index never goes stale.
"""

from __future__ import annotations

import os
from array import array
from dataclasses import dataclass, field

from archive import frames
from archive.part10 import frame_extents, item_header, scan_part10


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
        self._layout = self._scan(check_fragments=False)

    def _scan(self, check_fragments: bool) -> _Frames:
        with open(self.path, "rb", buffering=0) as fp:
            layout = scan_part10(fp, os.fstat(fp.fileno()).st_size, check_fragments=check_fragments)
        if layout.pixel_offset is None and not layout.encapsulated:
            return _Frames(deflated=True)
        one_per_frame = layout.encapsulated and len(layout.fragment_offsets) == self.number_of_frames
        if one_per_frame and not layout.extended_offsets:
            # One fragment per frame, as every tiled level is: the arrays as they are.
            return _Frames(layout.fragment_offsets, layout.fragment_lengths, unchecked=not layout.fragments_checked)
        if not layout.fragments_checked:  # the table does not give a frame per entry
            return self._scan(check_fragments=True)
        found = _Frames()
        for index, extent in enumerate(frame_extents(layout, self.number_of_frames, frames.frame_size(self._metadata))):
            found.offsets.append(extent[0].offset if extent else 0)
            found.lengths.append(extent[0].length if extent else 0)
            if len(extent) > 1:
                found.split[index] = [(f.offset, f.length) for f in extent]
        return found

    @property
    def nbytes(self) -> int:
        """About what the index holds in memory."""
        return 16 * len(self._layout.offsets) + 64 * sum(len(v) for v in self._layout.split.values())

    def read(self, index: int) -> bytes:
        """The stored bytes of frame ``index`` (from 0)."""
        layout = self._layout  # one snapshot: a read in another thread may replace it
        if layout.deflated:  # inflate the file: archive.frames does it with pydicom
            return frames.read_frames(self.path, self._metadata, self.number_of_frames, [index + 1])[0]
        if not 0 <= index < len(layout.offsets):
            raise IndexError(f"frame {index} is not in {self.path}, which has {len(layout.offsets)}")
        fd = os.open(self.path, os.O_RDONLY)
        try:
            if not layout.unchecked:
                parts = layout.split.get(index) or [(layout.offsets[index], layout.lengths[index])]
                return b"".join(os.pread(fd, length, offset) for offset, length in parts)
            offset, length = layout.offsets[index], layout.lengths[index]
            data = os.pread(fd, length + 8, offset - 8)
            if len(data) == length + 8 and data[:8] == item_header(length):
                return data[8:]
        finally:
            os.close(fd)
        # Not the one fragment the table promised (a frame of several fragments, or a
        # damaged file): walk every item once, as a scan that checks does, and read from
        # that; a damaged file raises InvalidInput there.
        self._layout = self._scan(check_fragments=True)
        return self.read(index)


@dataclass
class _Frames:
    """Where a file's frames lie: the first fragment of each, and the frames of several."""

    offsets: array = field(default_factory=lambda: array("q"))
    lengths: array = field(default_factory=lambda: array("q"))
    split: dict[int, list[tuple[int, int]]] = field(default_factory=dict)
    # Taken from the Basic Offset Table unread: read() checks each item header.
    unchecked: bool = False
    deflated: bool = False
