"""The JSON API under /api/ (Django REST framework)."""
