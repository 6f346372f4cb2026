"""Who is asking: session login, ``Authorization: Bearer <token>`` and HTTP Basic.

DICOMweb clients (OHIF, dicomweb-client, Slicer) send Basic or Bearer on every request;
a successful Basic check is remembered for a short while so that they do not pay a
password hash per request.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import threading
import time

from django.conf import settings
from django.contrib.auth import authenticate, get_user_model
from django.contrib.auth.models import AnonymousUser
from rest_framework import authentication, permissions

from .errors import Forbidden, Unauthorized
from .models import ApiToken, is_curator

# sha256(credentials) → (expiry, user pk, the user's password hash when checked)
_basic_cache: dict[str, tuple[float, int, str]] = {}
_basic_lock = threading.Lock()


def user_from_authorization(header: str):
    """The user an Authorization header names, ``None`` if it names no scheme we know.

    Raises Unauthorized when the scheme is known but the credentials are wrong.
    """
    scheme, _, credentials = header.partition(" ")
    scheme = scheme.lower()
    credentials = credentials.strip()
    if scheme in ("bearer", "token"):
        token = ApiToken.objects.select_related("user").filter(key=credentials).first()
        if token is None or not token.user.is_active:
            raise Unauthorized("the bearer token is not valid")
        return token.user
    if scheme == "basic":
        return _basic_user(credentials)
    return None


def _basic_user(credentials: str):
    try:
        username, _, password = base64.b64decode(credentials, validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise Unauthorized("the Basic credentials are not valid base64 of user:password") from None
    key = hashlib.sha256(credentials.encode()).hexdigest()
    now = time.monotonic()
    with _basic_lock:
        hit = _basic_cache.get(key)
    if hit and hit[0] > now:
        user = get_user_model().objects.filter(pk=hit[1], is_active=True).first()
        # A changed password or a different user behind the same pk misses the cache.
        if user is not None and user.password == hit[2] and user.get_username() == username:
            return user
    user = authenticate(username=username, password=password)
    if user is None or not user.is_active:
        raise Unauthorized("wrong user name or password")
    with _basic_lock:
        _basic_cache[key] = (now + settings.VITRINE_BASIC_AUTH_CACHE_S, user.pk, user.password)
    return user


def request_user(request):
    """The user behind a plain Django request: Authorization header first, then session."""
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if header:
        user = user_from_authorization(header)
        if user is not None:
            return user
    user = getattr(request, "user", None)
    return user if user is not None else AnonymousUser()


def require_curator(user) -> None:
    if not user.is_authenticated:
        raise Unauthorized("sign in as a curator to change the archive")
    if not is_curator(user):
        raise Forbidden(f"user {user.get_username()!r} does not have the curator role")


class BearerTokenAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request):
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if header.lower().startswith(("bearer ", "token ")):
            return user_from_authorization(header), None
        return None

    def authenticate_header(self, request):
        return 'Bearer realm="vitrine"'


class CachedBasicAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request):
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if header.lower().startswith("basic "):
            return _basic_user(header.partition(" ")[2].strip()), None
        return None

    def authenticate_header(self, request):
        return 'Basic realm="vitrine"'


class IsCuratorOrReadOnly(permissions.BasePermission):
    """Reads for everyone (views filter what each user sees); writes for curators."""

    def has_permission(self, request, view) -> bool:
        if request.method in permissions.SAFE_METHODS:
            return True
        require_curator(request.user)
        return True
