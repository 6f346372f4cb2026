"""Grayscale to 8 bits: the Modality LUT, then the VOI LUT window (PS3.3 C.11.1, C.11.2).

Stored values (often 12 or 16 bits) are rescaled to output units (Hounsfield units
for CT) in ``float64`` before windowing, so nothing is truncated before the final
mapping to ``0..255``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

import numpy as np
from numpy.typing import NDArray

from iiif.errors import InvalidIIIFRequest

__all__ = [
    "WINDOW_PRESETS",
    "VoiFunction",
    "Window",
    "apply_modality_lut",
    "apply_window",
    "parse_window",
    "window_from_range",
]


class VoiFunction(Enum):
    """VOI LUT Function (0028,1056), PS3.3 C.11.2.1.3."""

    LINEAR = "LINEAR"
    LINEAR_EXACT = "LINEAR_EXACT"
    SIGMOID = "SIGMOID"


@dataclass(frozen=True)
class Window:
    """Window Center (0028,1050) and Window Width (0028,1051), in output units."""

    center: float
    width: float
    function: VoiFunction = VoiFunction.LINEAR

    def __post_init__(self) -> None:
        if not (np.isfinite(self.center) and np.isfinite(self.width)):
            raise ValueError(f"window must be finite, got ({self.center}, {self.width})")
        if self.function is VoiFunction.LINEAR and self.width < 1:
            raise ValueError(f"LINEAR window width must be >= 1, got {self.width}")
        if self.width <= 0:
            raise ValueError(f"window width must be > 0, got {self.width}")


# CT presets in Hounsfield units (level, width), as commonly taught for CT reading
# (e.g. Radiopaedia "Windowing (CT)"). Named in identifiers as "{uid}~{name}".
WINDOW_PRESETS: dict[str, Window] = {
    "lung": Window(-600.0, 1500.0),
    "mediastinum": Window(50.0, 350.0),
    "soft": Window(50.0, 400.0),
    "bone": Window(400.0, 1800.0),
    "brain": Window(40.0, 80.0),
    "liver": Window(30.0, 150.0),
}

_EXPLICIT_RE = re.compile(r"(-?[0-9]+(?:\.[0-9]+)?)_([0-9]+(?:\.[0-9]+)?)")


def parse_window(text: str) -> Window:
    """Parse a window suffix: a preset name (``bone``) or ``{center}_{width}`` (``-600_1500``).

    Raises
    ------
    InvalidIIIFRequest
        An unknown preset, or a width below 1.
    """
    preset = WINDOW_PRESETS.get(text)
    if preset is not None:
        return preset
    match = _EXPLICIT_RE.fullmatch(text)
    if match is None:
        names = ", ".join(sorted(WINDOW_PRESETS))
        raise InvalidIIIFRequest(
            f"window {text!r} is neither a preset ({names}) nor center_width such as 40_400"
        )
    center, width = float(match.group(1)), float(match.group(2))
    if width < 1:
        raise InvalidIIIFRequest(f"window {text!r} has a width below 1")
    return Window(center, width)


def apply_modality_lut(
    stored: NDArray[np.integer] | NDArray[np.floating], slope: float = 1.0, intercept: float = 0.0
) -> NDArray[np.float64]:
    """Rescale stored values to output units: ``slope * stored + intercept`` (C.11.1.1.2).

    Parameters
    ----------
    stored : (h, w) integer or float array
    slope, intercept : float
        Rescale Slope (0028,1053) and Rescale Intercept (0028,1052).

    Returns
    -------
    (h, w) float64 array
    """
    values = stored.astype(np.float64)
    if slope != 1.0:
        values *= slope
    if intercept != 0.0:
        values += intercept
    return values


def apply_window(values: NDArray[np.floating], window: Window) -> NDArray[np.uint8]:
    """Map output units to ``0..255`` through a VOI window (PS3.3 C.11.2.1.2).

    Parameters
    ----------
    values : (h, w) float array
        Modality-LUT output (:func:`apply_modality_lut`).
    window : Window

    Returns
    -------
    (h, w) uint8 array
    """
    c, w = window.center, window.width
    y_max = 255.0
    if window.function is VoiFunction.LINEAR:
        # C.11.2.1.2.1: centre and width are offset by 0.5 and 1 for the discrete case.
        scaled = ((values - (c - 0.5)) / (w - 1.0) + 0.5) * y_max if w > 1 else None
        low, high = c - 0.5 - (w - 1.0) / 2.0, c - 0.5 + (w - 1.0) / 2.0
        if scaled is None:
            out = np.where(values > high, y_max, 0.0)
        else:
            out = np.where(values <= low, 0.0, np.where(values > high, y_max, scaled))
    elif window.function is VoiFunction.LINEAR_EXACT:
        # C.11.2.1.3.2
        scaled = ((values - c) / w + 0.5) * y_max
        out = np.where(values <= c - w / 2.0, 0.0, np.where(values > c + w / 2.0, y_max, scaled))
    else:
        # C.11.2.1.3.1
        with np.errstate(over="ignore"):
            out = y_max / (1.0 + np.exp(-4.0 * (values - c) / w))
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def window_from_range(values: NDArray[np.floating]) -> Window:
    """A LINEAR_EXACT window spanning the data's minimum to maximum (no window stored)."""
    low, high = float(np.min(values)), float(np.max(values))
    width = max(high - low, 1.0)
    return Window((low + high) / 2.0, width, VoiFunction.LINEAR_EXACT)
