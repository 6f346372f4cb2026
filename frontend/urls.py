"""Portal pages."""

urlpatterns: list = []
