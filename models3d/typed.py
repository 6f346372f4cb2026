"""Array types shared by the pure meshing modules."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

#: A scalar volume indexed ``[z, y, x]``: uint8, int16, uint16 or float32.
Volume = NDArray[np.generic]
#: ``(V, 3) float32`` vertex positions ``x, y, z`` in mm.
Vertices = NDArray[np.float32]
#: ``(F, 3) int32`` vertex ids of each triangle, counter-clockwise seen from outside.
Faces = NDArray[np.int32]
#: ``(3,)`` spacing ``(dz, dy, dx)`` in mm.
Spacing = tuple[float, float, float]
#: Progress callback ``on_progress(stage, fraction)`` with ``0 <= fraction <= 1``.
ProgressCallback = Callable[[str, float], None]
