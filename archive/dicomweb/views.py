"""DICOMweb routes (PS3.18): STOW-RS, QIDO-RS and WADO-RS.

Views are plain Django functions rather than DRF views: DICOMweb speaks its own media
types, and the latency budget (a QIDO of 500 instances in a few milliseconds) leaves no
room for content negotiation machinery we would not use. Errors are ArchiveErrors,
which ``archive.http.ArchiveErrorMiddleware`` turns into JSON answers.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from django.conf import settings
from django.db.models import Q
from django.http import HttpResponse, StreamingHttpResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET
from pydicom.datadict import keyword_for_tag, tag_for_keyword

from .. import frames, query
from ..auth import request_user, require_curator
from ..dicom import transcode
from ..errors import (
    ArchiveError,
    Forbidden,
    InvalidInput,
    NotAcceptable,
    NotFound,
    PayloadTooLarge,
    UnsupportedMediaType,
)
from ..models import Instance, Visibility, can_read_private
from ..multipart import (
    file_chunks,
    new_boundary,
    parse_accept,
    parse_media_type,
    read_parts,
    write_parts,
)
from ..part10 import EXPLICIT_LE, add_part10_preamble
from ..services import store_files
from ..storage import get_storage
from . import encoding
from . import rendered as render

DICOM_JSON = "application/dicom+json"
_JSON_TYPES = (DICOM_JSON, "application/json")
_HEX_TAG = re.compile(r"^[0-9A-Fa-f]{8}$")
_CONTROL = {"limit", "offset", "includefield", "fuzzymatching"}


# --- shared helpers ---------------------------------------------------------------------


def base_url(request) -> str:
    root = settings.VITRINE_PUBLIC_URL or request.build_absolute_uri("/")[:-1]
    return f"{root.rstrip('/')}/dicomweb"


def visibility_filter(level: str, user) -> Q:
    """The rows of ``level`` that ``user`` may see."""
    if can_read_private(user):
        return Q()
    prefix = {"STUDY": "", "SERIES": "study__", "IMAGE": "series__study__"}[level]
    condition = Q(**{f"{prefix}visibility": Visibility.PUBLIC})
    if user.is_authenticated:
        condition |= Q(**{f"{prefix}owner": user})
    return condition


def json_response(payload: bytes, status: int = 200) -> HttpResponse:
    response = HttpResponse(payload, status=status, content_type=DICOM_JSON)
    response["Access-Control-Allow-Origin"] = "*"
    return response


def require_json_accept(request) -> None:
    accepted = parse_accept(request.META.get("HTTP_ACCEPT", ""))
    if not any(a.matches(t) for a in accepted for t in _JSON_TYPES):
        raise NotAcceptable(
            f"this route answers {DICOM_JSON}; the Accept header asks for "
            f"{request.META.get('HTTP_ACCEPT')!r}"
        )


def instances_for(
    request, study_uid: str, series_uid: str | None = None, sop_uid: str | None = None, extra: tuple[str, ...] = ()
):
    """The instances under a WADO-RS path that the asking user may see; 404 if none.

    ``extra`` names further columns to fetch (``metadata`` is large: only when needed)."""
    user = request_user(request)
    qs = Instance.objects.filter(visibility_filter("IMAGE", user), series__study__study_uid=study_uid)
    if series_uid:
        qs = qs.filter(series__series_uid=series_uid)
    if sop_uid:
        qs = qs.filter(sop_uid=sop_uid)
    qs = qs.order_by("series__series_number", "series_id", "instance_number", "pk")
    rows = list(qs.values("sop_uid", "path", "transfer_syntax_uid", "series__series_uid", "sop_class_uid", *extra))
    if not rows:
        raise NotFound(f"no instance at {request.path}")
    return rows


# --- STOW-RS ----------------------------------------------------------------------------


class _HashingSink:
    """A temporary file in the archive's incoming folder that hashes what it is given."""

    def __init__(self) -> None:
        self.file = get_storage().incoming_file()
        self.path = Path(self.file.name)
        self.digest = hashlib.sha256()

    def write(self, data: bytes) -> None:
        self.digest.update(data)
        self.file.write(data)

    def close(self) -> None:
        self.file.close()
        if add_part10_preamble(self.path):
            self.digest = None  # the bytes changed: the store hashes the file itself

    def hexdigest(self) -> str | None:
        return self.digest.hexdigest() if self.digest is not None else None

    def discard(self) -> None:
        self.file.close()
        self.path.unlink(missing_ok=True)


@csrf_exempt
def stow(request, study_uid: str | None = None):
    if request.method != "POST":
        raise InvalidInput(f"STOW-RS takes POST, not {request.method}")
    user = request_user(request)
    require_curator(user)
    _enforce_csrf_for_sessions(request)
    require_json_accept(request)
    content_type = parse_media_type(request.META.get("CONTENT_TYPE", ""))
    if content_type.type != "multipart/related":
        raise UnsupportedMediaType(
            f"STOW-RS takes multipart/related; type=\"application/dicom\", not {content_type.type!r}"
        )
    if content_type.params.get("type", "application/dicom").lower() != "application/dicom":
        raise UnsupportedMediaType(
            f"only application/dicom parts are accepted, not {content_type.params.get('type')!r}"
        )
    declared = int(request.META.get("CONTENT_LENGTH") or 0)
    if declared > settings.VITRINE_MAX_UPLOAD_BYTES:
        raise PayloadTooLarge(
            f"the body of {declared} bytes is larger than the limit of "
            f"{settings.VITRINE_MAX_UPLOAD_BYTES} bytes"
        )
    staged: list[tuple[str, _HashingSink]] = []
    current: list[_HashingSink] = []

    def open_sink(part):
        sink = _HashingSink()
        current.append(sink)
        return sink

    def on_part_end(part, sink):
        sink.close()
        staged.append((part.content_type.type, sink))

    try:
        read_parts(
            request, content_type.params.get("boundary", ""), open_sink,
            max_bytes=settings.VITRINE_MAX_UPLOAD_BYTES, on_part_end=on_part_end,
        )
    except BaseException:
        for sink in current:
            sink.discard()
        raise
    if not staged:
        raise InvalidInput("the multipart body holds no part")
    base = base_url(request)
    stored, failed = [], []
    dicom = []
    for part_type, sink in staged:
        if part_type == "application/dicom":
            dicom.append(sink)
        else:
            sink.discard()
            failed.append({"status": 0xC000, "reason": f"a part has Content-Type {part_type!r}"})
    outcomes = store_files(
        [(sink.path, sink.hexdigest()) for sink in dicom],
        received_from=f"STOW-RS {user.get_username()}", owner=user, expect_study_uid=study_uid,
    )
    for outcome in outcomes:
        if isinstance(outcome, ArchiveError):
            failed.append({"status": outcome.dimse_status or 0xC000, "reason": outcome.detail,
                           "sop_class": outcome.sop_class_uid, "sop_uid": outcome.sop_uid})
            continue
        instance = outcome.instance
        series = instance.series
        stored.append({
            "sop_class": instance.sop_class_uid,
            "sop_uid": instance.sop_uid,
            "url": f"{base}/studies/{series.study.study_uid}/series/{series.series_uid}/instances/{instance.sop_uid}",
        })
    study_url = f"{base}/studies/{study_uid}" if study_uid else None
    status = 200 if not failed else 202 if stored else 409
    response = json_response(json.dumps(encoding.stow_response(study_url, stored, failed)).encode(), status)
    if failed:
        response["Warning"] = ", ".join(f'299 vitrine "{f["reason"][:200]}"' for f in failed[:10])
    return response


def _enforce_csrf_for_sessions(request) -> None:
    """A browser session must carry the CSRF token; token and Basic clients need not."""
    if request.META.get("HTTP_AUTHORIZATION"):
        return
    reason = CsrfViewMiddleware(lambda r: None).process_view(request, None, (), {})
    if reason is not None:
        raise Forbidden("the CSRF token is missing or wrong")


# --- QIDO-RS ----------------------------------------------------------------------------


@require_GET
def qido(request, level: str, study_uid: str | None = None, series_uid: str | None = None):
    require_json_accept(request)
    user = request_user(request)
    keys, include, limit, offset = _parse_qido_params(request)
    scope = {}
    if study_uid:
        scope["StudyInstanceUID"] = study_uid
    if series_uid:
        scope["SeriesInstanceUID"] = series_uid
    for keyword, value in scope.items():
        if keys.get(keyword, value) != value:
            return json_response(b"[]")
        keys[keyword] = value
    qs = query.build_query(level, keys).filter(visibility_filter(level, user))
    returned = _returned_keywords(level, keys, include, study_uid, series_uid)
    paths = query.value_paths(level, returned)
    uid_paths = query.value_paths(level, ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"))
    wanted = sorted(set(paths.values()) | set(uid_paths.values()))
    extra = sorted(include - set(query.ATTRIBUTES)) if include != {"all"} else ["all"]
    if extra and level == "IMAGE":
        wanted.append("metadata")
    window = qs.values(*wanted)
    window = window[offset: offset + limit + 1] if limit is not None else window[offset:]
    rows = list(window)
    truncated = limit is not None and len(rows) > limit
    rows = rows[:limit] if truncated else rows
    base = base_url(request)
    encode = encoding.row_encoder(paths)
    results = []
    for row in rows:
        item = encode(row)
        if extra and level == "IMAGE":
            metadata = row["metadata"]
            for tag, element in metadata.items():
                if extra == ["all"] or keyword_for_tag(int(tag, 16)) in extra or tag in extra:
                    if "BulkDataURI" not in element:
                        item.setdefault(tag, element)
        item[encoding.RETRIEVE_URL] = {"vr": "UR", "Value": [_retrieve_url(base, level, row, uid_paths)]}
        results.append(item)
    response = json_response(encoding.dumps(results))
    if truncated:
        response["Warning"] = (
            f'299 vitrine "The results are limited to {limit}; more match. '
            f'Ask again with offset={offset + limit}."'
        )
    return response


def _parse_qido_params(request):
    keys: dict[str, str] = {}
    include: set[str] = set()
    limit = None
    offset = 0
    for name, values in request.GET.lists():
        if name in ("limit", "offset"):
            number = _non_negative(name, values[-1])
            if name == "limit":
                limit = number
            else:
                offset = number
        elif name == "includefield":
            for value in values:
                for field in value.split(","):
                    include.add(_keyword(field.strip()) if field.strip() != "all" else "all")
        elif name == "fuzzymatching":
            if values[-1] not in ("true", "false"):
                raise InvalidInput(f"fuzzymatching must be true or false, got {values[-1]!r}")
        else:
            keyword = _keyword(name)
            if keyword not in query.ATTRIBUTES:
                raise InvalidInput(f"matching on {keyword} is not supported")
            keys[keyword] = ",".join(values)
    if "all" in include:
        include = {"all"}
    return keys, include, limit, offset


def _keyword(name: str) -> str:
    if _HEX_TAG.match(name):
        keyword = keyword_for_tag(int(name, 16))
        if keyword:
            return keyword
        raise InvalidInput(f"unknown attribute tag {name}")
    if tag_for_keyword(name) is None:
        raise InvalidInput(f"unknown query parameter or attribute {name!r}")
    return name


def _non_negative(name: str, value: str) -> int:
    try:
        number = int(value)
        if number < 0:
            raise ValueError
        return number
    except ValueError:
        raise InvalidInput(f"{name} must be a whole number ≥ 0, got {value!r}") from None


def _returned_keywords(level, keys, include, study_uid, series_uid) -> list[str]:
    returned = list(query.DEFAULT_RETURN[level])
    if level in ("SERIES", "IMAGE"):
        returned.append("StudyInstanceUID")
        if not study_uid:
            returned += query.DEFAULT_RETURN["STUDY"]
    if level == "IMAGE":
        returned.append("SeriesInstanceUID")
        if not series_uid:
            returned += query.DEFAULT_RETURN["SERIES"]
    returned += list(keys)
    if include == {"all"}:
        returned += [a.keyword for a in query.attributes_for(level)]
    else:
        returned += [k for k in include if k in query.ATTRIBUTES]
    return list(dict.fromkeys(returned))


def _retrieve_url(base: str, level: str, row: dict, uid_paths: dict[str, str]) -> str:
    url = f"{base}/studies/{row[uid_paths['StudyInstanceUID']]}"
    if level in ("SERIES", "IMAGE"):
        url += f"/series/{row[uid_paths['SeriesInstanceUID']]}"
    if level == "IMAGE":
        url += f"/instances/{row[uid_paths['SOPInstanceUID']]}"
    return url


# --- WADO-RS ----------------------------------------------------------------------------


@require_GET
def retrieve(request, study_uid: str, series_uid: str | None = None, sop_uid: str | None = None):
    wanted_syntax = _negotiate_dicom(request)
    convert = wanted_syntax not in (None, "*")
    rows = instances_for(request, study_uid, series_uid, sop_uid, extra=("metadata", "number_of_frames") if convert else ())
    converted = {row["sop_uid"] for row in rows if convert and row["transfer_syntax_uid"] != wanted_syntax}
    if converted and wanted_syntax != EXPLICIT_LE:
        raise NotAcceptable(
            f"{len(converted)} instance(s) are stored in another transfer syntax than {wanted_syntax}; "
            f"Vitrine serves the stored bytes (transfer-syntax=*) or converts to {EXPLICIT_LE} "
            "(Explicit VR Little Endian)"
        )
    for row in rows:
        if row["sop_uid"] in converted:
            try:
                size = frames.frame_size(row["metadata"]) * (row["number_of_frames"] or 1)
                transcode.check_size(size, row["transfer_syntax_uid"])
            except transcode.TranscodeError as exc:
                raise NotAcceptable(f"instance {row['sop_uid']}: {exc}") from None
    storage = get_storage()

    def part(row: dict) -> tuple[str, object]:
        path = storage.path(row["path"])
        if row["sop_uid"] not in converted:
            return f"application/dicom; transfer-syntax={row['transfer_syntax_uid']}", file_chunks(path)
        # Decoded one instance at a time, as the stream reaches it.
        data = transcode.part10_bytes(transcode.decompressed(Path(path).read_bytes()))
        return f"application/dicom; transfer-syntax={EXPLICIT_LE}", data

    boundary = new_boundary()
    response = StreamingHttpResponse(
        write_parts(boundary, map(part, rows)),
        content_type=f'multipart/related; type="application/dicom"; boundary={boundary}',
    )
    response["Access-Control-Allow-Origin"] = "*"
    return response


def _negotiate_dicom(request) -> str | None:
    """The transfer syntax asked for (None: any), or NotAcceptable (PS3.18 8.7.3)."""
    for media in parse_accept(request.META.get("HTTP_ACCEPT", "")):
        if media.type in ("*/*", "multipart/*"):
            return None
        if media.type == "multipart/related" and media.params.get("type", "application/dicom").lower() == "application/dicom":
            return media.params.get("transfer-syntax")
        if media.type == "application/dicom":
            return media.params.get("transfer-syntax")
    raise NotAcceptable(
        f"this route answers multipart/related; type=\"application/dicom\"; the Accept header asks "
        f"for {request.META.get('HTTP_ACCEPT')!r}"
    )


@require_GET
def metadata(request, study_uid: str, series_uid: str | None = None, sop_uid: str | None = None):
    require_json_accept(request)
    rows = instances_for(request, study_uid, series_uid, sop_uid, extra=("metadata",))
    base = base_url(request)
    chunks = []
    for row in rows:
        url = f"{base}/studies/{study_uid}/series/{row['series__series_uid']}/instances/{row['sop_uid']}"
        chunks.append(encoding.with_bulk_base(json.dumps(row["metadata"], separators=(",", ":")), url))
    return json_response(("[" + ",".join(chunks) + "]").encode())


@require_GET
def frames_view(request, study_uid: str, series_uid: str, sop_uid: str, frame_list: str):
    (row,) = instances_for(request, study_uid, series_uid, sop_uid, extra=("metadata", "number_of_frames"))
    numbers = frames.parse_frame_list(frame_list)
    path = get_storage().path(row["path"])
    syntax = row["transfer_syntax_uid"]
    media_type = frames.media_type_for(syntax)
    if frames.negotiate_frames(request.META.get("HTTP_ACCEPT", ""), media_type, syntax) == frames.NATIVE:
        data = frames.decoded_frames(path, row["metadata"], row["number_of_frames"] or 1, numbers, syntax)
        media_type, syntax = "application/octet-stream", EXPLICIT_LE
    else:
        data = frames.read_frames(path, row["metadata"], row["number_of_frames"] or 1, numbers)
    boundary = new_boundary()
    part_type = f"{media_type}; transfer-syntax={syntax}"
    body = write_parts(boundary, ((part_type, frame) for frame in data))
    response = HttpResponse(
        b"".join(body), content_type=f'multipart/related; type="{media_type}"; boundary={boundary}'
    )
    response["Access-Control-Allow-Origin"] = "*"
    return response


@require_GET
def bulkdata(request, study_uid: str, series_uid: str, sop_uid: str, tag: str):
    (row,) = instances_for(request, study_uid, series_uid, sop_uid)
    if not _HEX_TAG.match(tag):
        raise InvalidInput(f"a bulk data tag is 8 hexadecimal digits, got {tag!r}")
    path = get_storage().path(row["path"])
    value = frames.read_bulk_value(path, int(tag, 16))
    boundary = new_boundary()
    body = write_parts(boundary, [("application/octet-stream", value)])
    response = HttpResponse(
        b"".join(body), content_type=f'multipart/related; type="application/octet-stream"; boundary={boundary}'
    )
    response["Access-Control-Allow-Origin"] = "*"
    return response


@require_GET
def rendered(request, study_uid: str, series_uid: str | None = None, sop_uid: str | None = None,
             frame_list: str | None = None, thumbnail: bool = False):
    """Rendered instance or frame; a thumbnail of a study or series shows its middle instance."""
    options = render.parse_render_options(request.GET.dict(), request.META.get("HTTP_ACCEPT", ""), thumbnail)
    rows = instances_for(request, study_uid, series_uid, sop_uid)
    if len(rows) > 1 and not thumbnail:
        raise InvalidInput("rendered answers one instance or frame; name an instance")
    row = rows[len(rows) // 2]
    frame = frames.parse_frame_list(frame_list)[0] if frame_list else 1
    instance = Instance.objects.only("metadata", "number_of_frames").get(sop_uid=row["sop_uid"])
    if frame > (instance.number_of_frames or 1):
        raise NotFound(f"frame {frame} does not exist: the instance has {instance.number_of_frames or 1}")
    data = render.render_frame(get_storage().path(row["path"]), instance.metadata, frame, options)
    response = HttpResponse(data, content_type=options.media_type)
    response["Access-Control-Allow-Origin"] = "*"
    return response
