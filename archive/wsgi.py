import gc
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "archive.settings")
django_application = get_wsgi_application()

# Import every view now rather than on each worker's first request.
from django.urls import get_resolver

get_resolver().url_patterns  # noqa: B018

# Tiles of public images skip Django's middleware and URL resolver (docs/serving.md);
# every other request, private images' tiles included, goes to Django as it is.
from iiif.fastpath import ImageFastPath

application = ImageFastPath(django_application)

# Pillow imports its JPEG and PNG plugins on first use: ~10 ms that every worker paid
# on its first decoded tile, in the middle of a burst. Once here, before the fork.
from PIL import Image

Image.preinit()

# What is loaded by now (Django, the views, NumPy, Pillow, pydicom: ~130,000 objects)
# lives as long as the process. Frozen, it is left out of the garbage collector's full
# passes, each of which otherwise stopped a worker for 40-90 ms in the middle of a tile
# burst; with --preload the workers fork after this and share those pages untouched.
gc.freeze()
