"""The archive core. Importing this package imports no Django and no Celery, so pure
modules such as ``archive.errors`` and ``archive.dicom`` stay light."""
