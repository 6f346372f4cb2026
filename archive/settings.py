"""Django settings for Vitrine.

Every default is embedded so that ``make run`` works on a fresh machine: SQLite in WAL
mode, files under ``./var/``, and a Celery broker that needs no server. Environment
variables switch to the scaled configuration (see the README's table).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import dj_database_url

from archive import httpserver

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("VITRINE_VAR", BASE_DIR / "var")).resolve()


def _env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _secret_key() -> str:
    """The key from the environment, or one generated once and kept in ./var/."""
    if key := os.environ.get("VITRINE_SECRET_KEY"):
        return key
    path = VAR_DIR / "secret_key"
    if not path.exists():
        import secrets

        VAR_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _secret_key()
DEBUG = _env_bool("VITRINE_DEBUG", False)
ALLOWED_HOSTS = os.environ.get("VITRINE_ALLOWED_HOSTS", "127.0.0.1,localhost,[::1],testserver").split(",")
CSRF_TRUSTED_ORIGINS = [o for o in os.environ.get("VITRINE_CSRF_ORIGINS", "").split(",") if o]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "archive",
    "ingest",
    "iiif",
    "models3d",
    "frontend",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "archive.http.ArchiveErrorMiddleware",
]

ROOT_URLCONF = "archive.urls"
WSGI_APPLICATION = "archive.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# Database: SQLite in WAL mode by default, anything dj-database-url reads otherwise.
DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{VAR_DIR / 'vitrine.sqlite3'}"),
        conn_max_age=int(os.environ.get("VITRINE_DB_CONN_MAX_AGE", "60")),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = {
        "init_command": (
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=30000;"
        ),
        "transaction_mode": "IMMEDIATE",
    }
    # A file, not memory, for the test database, so that live-server tests use real
    # per-thread connections as the HTTP server does; one per process, so that test runs
    # side by side do not share it.
    DATABASES["default"]["TEST"] = {
        "NAME": os.path.join(tempfile.gettempdir(), f"vitrine-test-{os.getpid()}.sqlite3")
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True

LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"

# --- Archive storage -------------------------------------------------------------------
# VITRINE_STORAGE is a directory path (filesystem storage) or a dotted Storage class path
# followed by ':' and its location, e.g. "archive.storage.ArchiveFileStorage:/srv/dicom".
VITRINE_STORAGE = os.environ.get("VITRINE_STORAGE", str(VAR_DIR / "dicom"))
VITRINE_TMP_DIR = Path(os.environ.get("VITRINE_TMP_DIR", VAR_DIR / "tmp"))
# What to do when a SOP Instance UID arrives again with different bytes: "reject" or "replace".
VITRINE_DUPLICATE_POLICY = os.environ.get("VITRINE_DUPLICATE_POLICY", "reject")
VITRINE_MAX_UPLOAD_BYTES = int(os.environ.get("VITRINE_MAX_UPLOAD_BYTES", str(4 * 1024**3)))

# --- Ingest ----------------------------------------------------------------------------
VITRINE_MAX_INGEST_BYTES = int(os.environ.get("VITRINE_MAX_INGEST_BYTES", str(64 * 1024**3)))
# Each Celery pool process loads the meshing kernels as it starts (models3d/tasks.py),
# so that the first job does not wait for them; off for workers that never mesh.
VITRINE_MESH_WARM_UP = _env_bool("VITRINE_MESH_WARM_UP", True)
VITRINE_UPLOAD_EXPIRY_S = int(os.environ.get("VITRINE_UPLOAD_EXPIRY_S", str(7 * 24 * 3600)))

# --- DIMSE -----------------------------------------------------------------------------
VITRINE_AE_TITLE = os.environ.get("VITRINE_AE_TITLE", "VITRINE")
VITRINE_DICOM_HOST = os.environ.get("VITRINE_DICOM_HOST", "0.0.0.0")
VITRINE_DICOM_PORT = int(os.environ.get("VITRINE_DICOM_PORT", "11112"))
# Who may use which service: "any" accepts every calling AE, "registered" only AEs in
# the Modality table.
VITRINE_STORE_FROM = os.environ.get("VITRINE_STORE_FROM", "any")
VITRINE_QUERY_FROM = os.environ.get("VITRINE_QUERY_FROM", "registered")
# Also require a registered AE to call from its registered host.
VITRINE_DIMSE_CHECK_HOST = _env_bool("VITRINE_DIMSE_CHECK_HOST", False)

# --- HTTP ------------------------------------------------------------------------------
VITRINE_HTTP_HOST = os.environ.get("VITRINE_HTTP_HOST", "127.0.0.1")
VITRINE_HTTP_PORT = int(os.environ.get("VITRINE_HTTP_PORT", "8000"))
# granian: processes, and Python threads in each (archive/httpserver.py, docs/serving.md).
VITRINE_HTTP_WORKERS = int(os.environ.get("VITRINE_HTTP_WORKERS", str(httpserver.default_workers())))
VITRINE_HTTP_THREADS = int(os.environ.get("VITRINE_HTTP_THREADS", str(httpserver.DEFAULT_THREADS)))
VITRINE_PUBLIC_URL = os.environ.get("VITRINE_PUBLIC_URL", "")
# How many seconds a successful HTTP Basic check is remembered, so that DICOMweb clients
# sending Basic on every request do not pay a password hash each time.
VITRINE_BASIC_AUTH_CACHE_S = int(os.environ.get("VITRINE_BASIC_AUTH_CACHE_S", "60"))

# --- IIIF ------------------------------------------------------------------------------
VITRINE_IIIF_MAX_AREA = int(os.environ.get("VITRINE_IIIF_MAX_AREA", str(4096 * 4096)))
VITRINE_IIIF_CACHE_BYTES = int(os.environ.get("VITRINE_IIIF_CACHE_BYTES", str(512 * 1024**2)))
VITRINE_IIIF_RENDERED_CACHE_BYTES = int(os.environ.get("VITRINE_IIIF_RENDERED_CACHE_BYTES", str(64 * 1024**2)))
VITRINE_IIIF_DECODED_CACHE_BYTES = int(os.environ.get("VITRINE_IIIF_DECODED_CACHE_BYTES", str(64 * 1024**2)))
VITRINE_IIIF_PAGE_SIZE = int(os.environ.get("VITRINE_IIIF_PAGE_SIZE", "200"))

# --- Celery ----------------------------------------------------------------------------
_BROKER_DIR = VAR_DIR / "broker"
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "filesystem://")
CELERY_BROKER_TRANSPORT_OPTIONS = (
    {
        "data_folder_in": str(_BROKER_DIR / "queue"),
        "data_folder_out": str(_BROKER_DIR / "queue"),
        "processed_folder": str(_BROKER_DIR / "processed"),
        "control_folder": str(_BROKER_DIR / "control"),
        "store_processed": False,
    }
    if CELERY_BROKER_URL.startswith("filesystem")
    else {}
)
CELERY_RESULT_BACKEND = os.environ.get("CELERY_RESULT_BACKEND") or None
CELERY_TASK_ALWAYS_EAGER = _env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_WORKER_CONCURRENCY = int(os.environ.get("CELERY_WORKER_CONCURRENCY", "2"))
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Periodic tasks, sent by Celery beat (embedded in the worker that ``manage.py serve``
# starts; with several workers run one ``celery -A archive.celery beat`` instead).
CELERY_BEAT_SCHEDULE = {
    "fail-stale-meshing-jobs": {"task": "models3d.tasks.fail_stale_jobs", "schedule": 60.0},
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "archive.auth.BearerTokenAuthentication",
        "archive.auth.CachedBasicAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["archive.auth.IsCuratorOrReadOnly"],
    "EXCEPTION_HANDLER": "archive.http.drf_exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("VITRINE_LOG_LEVEL", "INFO")},
    "loggers": {
        "pynetdicom": {"level": os.environ.get("VITRINE_DIMSE_LOG_LEVEL", "WARNING")},
        "django.request": {"level": "ERROR"},
    },
}
