"""A WSGI front for the image requests of public images: Django's stack skipped.

A viewer asks for hundreds of tiles a minute, each ``GET
/iiif/3/{id}/{region}/{size}/0/default.jpg``, and most are a stored JPEG frame sent
as it is.  Through Django such a request spends more CPU in the handler, the URL
resolver and nine middleware than in finding and reading the tile
(docs/serving.md).  :class:`ImageFastPath` wraps Django's WSGI application
(``archive/wsgi.py``) and answers those requests itself, with the same lookup, the
same :func:`iiif.images.answer_image` and the same headers as the view; everything
else goes to Django unchanged.

Access: the fast path has no user.  It answers only when the image's study is public
at the time of the request (the same one query as the view, every request); for any
other study it steps aside, and the view answers 401, 403 or 200 after checking the
credentials.  It also steps aside for anything it would answer differently from the
view: an error of any kind (the view writes the 400, 404 or 406 with its reason),
``HEAD``, a path that is not ASCII, a ``Host`` that ``ALLOWED_HOSTS`` refuses, an
``http`` request under ``SECURE_SSL_REDIRECT``, and, always, a ``MIDDLEWARE`` setting
other than the one whose headers it reproduces (:data:`KNOWN_MIDDLEWARE`).
``tests/integration/iiif/test_fastpath.py`` checks that both paths send the same
bytes and the same headers.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterable

from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.core.handlers.wsgi import WSGIRequest
from django.core.signals import request_finished, request_started
from django.http import HttpResponse
from django.middleware.clickjacking import XFrameOptionsMiddleware
from django.middleware.security import SecurityMiddleware

from archive.errors import ArchiveError
from iiif import services
from iiif.imageapi.info import build_link_header
from iiif.images import PUBLIC_CACHE, answer_image, image_id_url

# Rotation 0 and default.jpg: what tile viewers ask for.  Identifier, region and size
# are each one path segment, as in iiif/urls.py.
_IMAGE_PATH = re.compile(r"^/iiif/3/([^/]+)/([^/]+)/([^/]+)/0/default\.jpg$")

# The middleware whose answer to a public image's GET this module reproduces: only the
# security and clickjacking headers and Content-Length change such a response (the
# view touches neither the session nor messages nor the CSRF cookie for it).
KNOWN_MIDDLEWARE = (
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "archive.http.ArchiveErrorMiddleware",
)

StartResponse = Callable[..., object]


class ImageFastPath:
    """WSGI middleware: public images' ``…/0/default.jpg`` here, all else to ``app``.

    Parameters
    ----------
    app : WSGI application
        Django's (``get_wsgi_application()``).  Settings are read once, here.
    """

    def __init__(self, app: Callable[[dict, StartResponse], Iterable[bytes]]) -> None:
        self.app = app
        self.enabled = (
            tuple(settings.MIDDLEWARE) == KNOWN_MIDDLEWARE
            and not settings.PREPEND_WWW
            and not settings.DISALLOWED_USER_AGENTS
        )
        self._headers = {secure: _middleware_headers(secure) for secure in (False, True)}
        self.answered = 0  # requests answered here, for tests and for curious operators

    def __call__(self, environ: dict, start_response: StartResponse) -> Iterable[bytes]:
        if self.enabled and environ.get("REQUEST_METHOD") == "GET":
            path = environ.get("PATH_INFO", "")
            match = _IMAGE_PATH.match(path) if path.isascii() else None
            if match is not None:
                answer = self._answer(environ, *match.groups())
                if answer is not None:
                    headers, body = answer
                    self.answered += 1
                    start_response("200 OK", headers)
                    return [body]
        return self.app(environ, start_response)

    def _answer(self, environ: dict, identifier: str, region: str, size: str) -> tuple[list, bytes] | None:
        """The headers and body for a public image, ``None`` to let Django answer."""
        request = WSGIRequest(environ)
        secure = request.is_secure()
        if settings.SECURE_SSL_REDIRECT and not secure:
            return None
        # As Django's handler does: its receivers close database connections that are
        # broken or older than CONN_MAX_AGE.
        request_started.send(sender=self.__class__, environ=environ)
        try:
            opened = services.open_public_image(identifier)
            if opened is None:
                return None  # private: the view checks who asks
            answer = answer_image(opened, region, size, "0", "default.jpg")
            link = build_link_header(image_id_url(request, identifier), answer.canonical_path)
        except (ArchiveError, DisallowedHost):
            return None
        finally:
            request_finished.send(sender=self.__class__)
        headers = [
            ("Content-Type", answer.media_type),
            ("Link", link),
            ("Cache-Control", PUBLIC_CACHE),
            ("Access-Control-Allow-Origin", "*"),
            ("Content-Length", str(len(answer.body))),
            *self._headers[secure],
        ]
        return headers, answer.body


def _middleware_headers(secure: bool) -> list[tuple[str, str]]:
    """The headers SecurityMiddleware and XFrameOptionsMiddleware add to a response, as
    those middleware compute them from the settings: they are asked once, here, with an
    empty response to an ``http`` or ``https`` request."""
    request = WSGIRequest({
        "REQUEST_METHOD": "GET", "PATH_INFO": "/", "SERVER_NAME": "localhost",
        "SERVER_PORT": "443" if secure else "80", "wsgi.url_scheme": "https" if secure else "http",
        "wsgi.input": io.BytesIO(),
    })
    response = HttpResponse()
    plain = set(response.headers)
    for middleware in (SecurityMiddleware, XFrameOptionsMiddleware):
        response = middleware(lambda _: None).process_response(request, response)
    return [(name, value) for name, value in response.items() if name not in plain]
