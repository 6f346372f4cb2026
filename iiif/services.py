"""From a IIIF identifier to an open ``ImageSource``: lookup, access, caching.

The identifier names one of three things (docs/iiif.md, "Identifiers"):

* a Series Instance UID of a VL Whole Slide Microscopy series: the series' levels
  (one TILED_FULL instance per level) become one :class:`TiledPyramidSource`, whose
  tiles are the stored JPEG frames, passed through untouched;
* a SOP Instance UID of a single-frame image: a CT/MR/grayscale slice through the
  Modality LUT and a VOI window (``~bone``, ``~40_400``), or a photograph;
* ``{SOPInstanceUID}:{n}``: frame ``n`` (from 1) of a multi-frame instance.

Every request looks its rows up again (one query), so that a study made private is
private at once; the opened sources are cached per process by the instance paths they
read, because stored files never change in place (a replacement gets a new name).
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.conf import settings
from django.db import connection

from archive.auth import request_user
from archive.errors import Forbidden, NotAcceptable, Unauthorized
from archive.models import Instance, Series, Study, Visibility, can_read_private
from archive.storage import get_storage
from iiif.errors import ImageNotFound, InvalidIIIFRequest
from iiif.frameindex import FrameIndex
from iiif.imageapi import (
    ArraySource,
    GrayscaleSource,
    ImageIdentifier,
    ImageSource,
    Level,
    TiledPyramidSource,
    parse_identifier,
)
from iiif.imageapi.window import VoiFunction, Window

WSI_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.77.1.6"
JPEG_BASELINE = "1.2.840.10008.1.2.4.50"
# ImageType value 3 of WSI instances that are not pyramid levels (PS3.3 C.8.12.4.1.1).
_NOT_A_LEVEL = {"LABEL", "OVERVIEW", "THUMBNAIL"}
_FRAME_RE = re.compile(r"^(?P<uid>[0-9.]+):(?P<frame>[0-9]+)(?P<window>~.*)?$")


# --- identifiers ------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageName:
    """A parsed identifier: the UID, the frame (from 1, ``None`` when not given), the window."""

    uid: str
    frame: int | None
    window: Window | None
    window_text: str | None


def parse_image_name(identifier: str) -> ImageName:
    """Split ``{uid}[:{frame}][~{window}]``; 404 for what cannot name an image, 400 for bad windows."""
    frame = None
    match = _FRAME_RE.match(identifier)
    if match:
        frame = int(match["frame"])
        if frame < 1 or match["frame"].startswith("0"):
            raise ImageNotFound(f"frame numbers start at 1, got {match['frame']!r} in {identifier!r}")
        identifier = match["uid"] + (match["window"] or "")
    ident: ImageIdentifier = parse_identifier(identifier)
    return ImageName(ident.uid, frame, ident.window, ident.window_text)


# --- access -----------------------------------------------------------------------------


def check_study_access(request, visibility: str, owner_id: int | None, what: str) -> None:
    """Public studies are open to all; private ones need a reader, a curator or the owner.

    Anonymous callers get 401 (with the IIIF Auth 2.0 probe hook in the documents they
    could not read), signed-in callers without rights 403.
    """
    if visibility == Visibility.PUBLIC:
        return
    user = request_user(request)
    if not user.is_authenticated:
        raise Unauthorized(f"{what} belongs to a private study: sign in to see it")
    if can_read_private(user) or (owner_id is not None and owner_id == user.pk):
        return
    raise Forbidden(f"user {user.get_username()!r} may not see {what}, which belongs to a private study")


def auth_services(request, visibility: str) -> tuple[dict[str, Any], ...]:
    """The IIIF Auth 2.0 hook: a probe service with its access service, for private images.

    Only the descriptions; the interactive flow (probe endpoint, token service) is not
    offered yet (docs/iiif.md).  Public images carry none, so viewers never start a flow.
    """
    if visibility == Visibility.PUBLIC:
        return ()
    root = public_root(request)
    return (
        {
            "id": f"{root}/iiif/auth/probe",
            "type": "AuthProbeService2",
            "service": [
                {
                    "id": f"{root}{settings.LOGIN_URL}",
                    "type": "AuthAccessService2",
                    "profile": "active",
                    "label": {"en": ["Sign in to Vitrine"]},
                }
            ],
        },
    )


_roots: dict[tuple[str, str], str] = {}


def public_root(request) -> str:
    """``scheme://host`` the clients see (``VITRINE_PUBLIC_URL`` behind a proxy)."""
    if configured := getattr(settings, "VITRINE_PUBLIC_URL", ""):
        return configured.rstrip("/")
    # build_absolute_uri checks the host against ALLOWED_HOSTS each time; remember the
    # answer per (scheme, Host header) instead, once it has passed that check.
    key = (request.scheme, request.META.get("HTTP_HOST", ""))
    root = _roots.get(key)
    if root is None:
        root = request.build_absolute_uri("/")[:-1].rstrip("/")
        if len(_roots) < 64:
            _roots[key] = root
    return root


# --- the source cache -------------------------------------------------------------------


class SourceCache:
    """A thread-safe LRU of opened sources, bounded by an estimate of their bytes.

    Building is single-flight per key: when several threads of a worker miss the same
    key at once (a viewer opening a slide asks for many tiles together), one builds and
    the others wait for it, instead of all scanning the same files.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[tuple, tuple[Any, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._building: dict[tuple, threading.Lock] = {}
        self.hits = 0
        self.misses = 0

    def get(self, key: tuple) -> Any | None:
        with self._lock:
            item = self._items.get(key)
            if item is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return item[0]

    def put(self, key: tuple, value: Any, size: int) -> None:
        if size > self.max_bytes:
            return  # larger than the whole budget (or caching is off: a budget of 0)
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            self._items[key] = (value, size)
            self._bytes += size
            while self._bytes > self.max_bytes and len(self._items) > 1:
                _, (_, dropped) = self._items.popitem(last=False)
                self._bytes -= dropped

    def get_or_build(self, key: tuple, build: Callable[[], tuple[Any, int]]) -> Any:
        value = self.get(key)
        if value is not None:
            return value
        with self._lock:
            building = self._building.setdefault(key, threading.Lock())
        try:
            with building:
                with self._lock:
                    item = self._items.get(key)  # built by another thread meanwhile
                if item is not None:
                    return item[0]
                value, size = build()
                self.put(key, value, size)
                return value
        finally:
            with self._lock:
                self._building.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0


# Sizes from settings (archive/settings.py reads them from the environment).
_cache = SourceCache(settings.VITRINE_IIIF_CACHE_BYTES)
# Rendered images that were not a stored tile (edge tiles, thumbnails, regions): cheap
# to keep, dear to make again.  Keyed by the source's key and the canonical request.
rendered_cache = SourceCache(settings.VITRINE_IIIF_RENDERED_CACHE_BYTES)
# Decoded tiles of pyramids, for the next region, thumbnail or edge tile that touches
# them (a 256 px RGB tile is 192 KiB).
decoded_tiles = SourceCache(settings.VITRINE_IIIF_DECODED_CACHE_BYTES)
# Where the whole stored tile that answers a request lies (iiif.images): small entries,
# so that a repeated tile skips parsing and planning.
tile_plans = SourceCache(8 * 1024**2)


def clear_cache() -> None:
    _cache.clear()
    rendered_cache.clear()
    decoded_tiles.clear()
    tile_plans.clear()


# --- opened images ----------------------------------------------------------------------


@dataclass(frozen=True)
class OpenedImage:
    """A source ready for the Image API, with what the response headers need."""

    source: ImageSource
    visibility: str
    key: tuple = ()  # the source's cache key: stored paths, frame, window


@dataclass(frozen=True)
class FoundImage:
    """What the lookup of an identifier found: whose it is, and how to open it.

    ``open`` runs the checks that come after access (a frame that does not exist, a WSI
    level named on its own), then opens the source through the cache.
    """

    uid: str
    visibility: str
    owner_id: int | None
    open: Callable[[], OpenedImage]


def find_image(identifier: str) -> FoundImage:
    """Look up an identifier (one query), without checking who asks.

    Raises
    ------
    ImageNotFound
        No series or instance has this UID (404).
    InvalidIIIFRequest
        A window on a whole-slide image (400).
    """
    name = parse_image_name(identifier)
    rows = _lookup(_WSI_LEVELS_SQL, (name.uid, WSI_SOP_CLASS)) if name.frame is None else []
    if rows:
        if name.window is not None:
            raise InvalidIIIFRequest(f"a whole-slide image is in colour and takes no window, got {identifier!r}")
        visibility = rows[0][1]
        paths = tuple(sorted(row[0] for row in rows))

        def open_pyramid() -> OpenedImage:
            key = ("wsi", paths)
            return OpenedImage(_cache.get_or_build(key, lambda: _build_pyramid(paths)), visibility, key)

        return FoundImage(name.uid, visibility, rows[0][2], open_pyramid)
    found = _lookup(_INSTANCE_SQL, (name.uid,))
    if not found:
        raise ImageNotFound(f"no image has the identifier {identifier!r}")
    path, visibility, owner_id, number_of_frames, sop_class = found[0]

    def open_frame() -> OpenedImage:
        count = number_of_frames or 1
        if sop_class == WSI_SOP_CLASS:
            raise ImageNotFound(f"{name.uid} is one level of a whole-slide image: name its series instead")
        if name.frame is None and count > 1:
            raise ImageNotFound(
                f"instance {name.uid} has {count} frames: name one as {name.uid}:1 to {name.uid}:{count}"
            )
        frame = name.frame or 1
        if frame > count:
            raise ImageNotFound(f"instance {name.uid} has {count} frames, not {frame}")
        key = ("frame", path, frame, name.window_text)
        source = _cache.get_or_build(key, lambda: _build_frame_source(path, frame, name.window))
        return OpenedImage(source, visibility, key)

    return FoundImage(name.uid, visibility, owner_id, open_frame)


def open_image(request, identifier: str) -> OpenedImage:
    """Look up an identifier, check the caller may see it, and return its source.

    Raises
    ------
    ImageNotFound
        No series or instance has this UID (404).
    Unauthorized, Forbidden
        It belongs to a private study the caller may not see (401, 403).
    InvalidIIIFRequest
        A window on a colour image, a frame that does not exist (400).
    NotAcceptable
        The stored pixels are in a form this server cannot decode (406).
    """
    found = find_image(identifier)
    check_study_access(request, found.visibility, found.owner_id, f"image {found.uid}")
    return found.open()


def open_public_image(identifier: str) -> OpenedImage | None:
    """The image when its study is public, else ``None``, without looking at who asks.

    For :mod:`iiif.fastpath`, which has no user: ``None`` sends the request on to the
    view, whose :func:`open_image` answers 401, 403 or 200 after checking credentials.
    Raises what :func:`find_image` and ``open`` raise.
    """
    found = find_image(identifier)
    if found.visibility != Visibility.PUBLIC:
        return None
    return found.open()


# The per-request lookups, in SQL: they run for every tile, and building the same
# queryset each time costs more than the query (docs/serving.md).  The same SELECTs as
# Instance.objects.filter(...).values_list(...), on the same three tables.
_JOIN = (
    f"FROM {Instance._meta.db_table} i JOIN {Series._meta.db_table} se ON i.series_id = se.id "
    f"JOIN {Study._meta.db_table} st ON se.study_id = st.id"
)
_WSI_LEVELS_SQL = f"SELECT i.path, st.visibility, st.owner_id {_JOIN} WHERE se.series_uid = %s AND i.sop_class_uid = %s"
_INSTANCE_SQL = (
    f"SELECT i.path, st.visibility, st.owner_id, i.number_of_frames, i.sop_class_uid {_JOIN} WHERE i.sop_uid = %s"
)


def _lookup(sql: str, params: tuple) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _value(metadata: dict, tag: str, default=None):
    values = metadata.get(tag, {}).get("Value")
    return values[0] if values else default


def _values(metadata: dict, tag: str) -> list:
    return list(metadata.get(tag, {}).get("Value") or [])


def pyramid_level(metadata: dict) -> Level | None:
    """A WSI level's geometry from its DICOM JSON; ``None`` for labels and overviews."""
    image_type = [str(v).upper() for v in _values(metadata, "00080008")]
    if len(image_type) > 2 and image_type[2] in _NOT_A_LEVEL:
        return None
    if str(_value(metadata, "00209311", "TILED_FULL")).upper() != "TILED_FULL":
        return None
    width, height = _value(metadata, "00480006"), _value(metadata, "00480007")
    tile_w, tile_h = _value(metadata, "00280011"), _value(metadata, "00280010")
    if not (width and height and tile_w and tile_h):
        return None
    return Level(int(width), int(height), int(tile_w), int(tile_h))


def _build_pyramid(paths: tuple[str, ...]) -> tuple[TiledPyramidSource, int]:
    rows = list(Instance.objects.filter(path__in=paths).values("path", "metadata", "number_of_frames", "transfer_syntax_uid"))
    storage = get_storage()
    found = []
    for row in rows:
        level = pyramid_level(row["metadata"])
        if level is not None:
            found.append((level, storage.path(row["path"]), row))
    if not found:
        raise ImageNotFound("the series has no TILED_FULL pyramid level")
    found.sort(key=lambda item: -item[0].width)
    # Levels of the same size (other focal planes, optical paths): keep the first.
    unique, seen = [], set()
    for item in found:
        if item[0][:2] not in seen:
            seen.add(item[0][:2])
            unique.append(item)
    syntaxes = {item[2]["transfer_syntax_uid"] for item in unique}
    jpeg = syntaxes == {JPEG_BASELINE}
    photometric = str(_value(unique[0][2]["metadata"], "00280004", "RGB"))
    # Each level file's frame offsets, found now, once, rather than on its first tile.
    indexes = [FrameIndex(path, row["metadata"], int(row["number_of_frames"] or 1)) for _, path, row in unique]

    def read_frame(level: int, index: int) -> bytes:
        data = indexes[level].read(index)
        # An odd-length JPEG is padded to even length in its fragment (PS3.5 A.4).
        return data[:-1] if data.endswith(b"\xff\xd9\x00") else data

    decode = None if jpeg else _native_decoder(unique)
    source = TiledPyramidSource(
        [item[0] for item in unique], read_frame,
        tile_format="jpeg" if jpeg else None,
        is_grayscale=photometric.startswith("MONOCHROME"),
        decode_frame=decode,
        decoded_cache=decoded_tiles,
        cache_key=("wsi", paths),
    )
    return source, 64 * 1024 + sum(index.nbytes for index in indexes)


_NATIVE = ("1.2.840.10008.1.2.1", "1.2.840.10008.1.2")


def _native_decoder(levels) -> Callable[..., np.ndarray]:
    """Decode native 8-bit frames; other encodings (JPEG 2000, JPEG-LS) are refused (406)."""
    template = levels[0][2]
    syntax = template["transfer_syntax_uid"]
    samples = int(_value(template["metadata"], "00280002", 3))
    bits = int(_value(template["metadata"], "00280100", 8))

    def decode(data: bytes, *, grayscale: bool, reduce: int = 1) -> np.ndarray:
        from iiif.imageapi.sources import reduce_pixels

        if syntax not in _NATIVE or bits != 8:
            raise NotAcceptable(
                f"whole-slide frames stored as {syntax} with {bits} bits are not served yet; "
                "convert the slide with JPEG tiles"
            )
        tile_w, tile_h = levels[0][0].tile_width, levels[0][0].tile_height
        pixels = np.frombuffer(data[: tile_w * tile_h * samples], np.uint8).reshape(tile_h, tile_w, samples)
        if grayscale and samples == 3:
            pixels = pixels[..., :1]
        return reduce_pixels(np.ascontiguousarray(pixels), reduce)

    return decode


def _build_frame_source(path_name: str, frame: int, window: Window | None) -> tuple[ImageSource, int]:
    from pydicom.pixels import pixel_array

    row = Instance.objects.filter(path=path_name).values("metadata", "transfer_syntax_uid").first()
    if row is None:
        raise ImageNotFound(f"the instance at {path_name} is gone")
    metadata = row["metadata"]
    if "7FE00010" not in metadata and "7FE00008" not in metadata and "7FE00009" not in metadata:
        raise ImageNotFound("the instance has no pixel data")
    photometric = str(_value(metadata, "00280004", "MONOCHROME2")).upper()
    try:
        pixels = pixel_array(get_storage().path(path_name), index=frame - 1)
    # pydicom's decoders fail in many ways on pixel data they cannot read.
    except (NotImplementedError, RuntimeError, ValueError, AttributeError, KeyError, TypeError, IndexError,
            OSError, EOFError) as exc:
        raise NotAcceptable(
            f"the stored pixels (transfer syntax {row['transfer_syntax_uid']}) cannot be decoded here: {exc}"
        ) from None
    if photometric.startswith("MONOCHROME") or pixels.ndim == 2:
        if pixels.ndim == 3:
            pixels = pixels[..., 0]
        source: ImageSource = GrayscaleSource(
            pixels,
            slope=float(_value(metadata, "00281053", 1.0)),
            intercept=float(_value(metadata, "00281052", 0.0)),
            window=window or stored_window(metadata),
            invert=photometric == "MONOCHROME1",
        )
        return source, pixels.nbytes * 3
    if window is not None:
        raise InvalidIIIFRequest("a colour image takes no window suffix")
    if pixels.dtype != np.uint8:
        top = max(float(pixels.max()), 1.0)
        pixels = (pixels.astype(np.float64) * 255.0 / top).astype(np.uint8)
    if pixels.ndim == 3 and pixels.shape[2] == 4:
        pixels = pixels[..., :3]
    return ArraySource(np.ascontiguousarray(pixels)), pixels.nbytes * 2


_VOI_FUNCTIONS = {"LINEAR": VoiFunction.LINEAR, "LINEAR_EXACT": VoiFunction.LINEAR_EXACT, "SIGMOID": VoiFunction.SIGMOID}


def stored_window(metadata: dict) -> Window | None:
    """The instance's first Window Center/Width (PS3.3 C.11.2), ``None`` if absent or unusable."""
    center, width = _value(metadata, "00281050"), _value(metadata, "00281051")
    if center is None or width is None:
        return None
    try:
        center, width = float(center), float(width)
    except (TypeError, ValueError):
        return None
    function = _VOI_FUNCTIONS.get(str(_value(metadata, "00281056", "LINEAR")).upper(), VoiFunction.LINEAR)
    try:
        return Window(center, width, function)
    except ValueError:
        return None


# --- studies and series for the Presentation API -----------------------------------------


def find_study(request, study_uid: str) -> Study:
    study = Study.objects.filter(study_uid=study_uid).select_related("patient").first()
    if study is None:
        raise ImageNotFound(f"no study has the UID {study_uid!r}")
    check_study_access(request, study.visibility, study.owner_id, f"study {study_uid}")
    return study


def find_series(request, series_uid: str) -> Series:
    series = Series.objects.filter(series_uid=series_uid).select_related("study", "study__patient").first()
    if series is None:
        raise ImageNotFound(f"no series has the UID {series_uid!r}")
    check_study_access(request, series.study.visibility, series.study.owner_id, f"series {series_uid}")
    return series
