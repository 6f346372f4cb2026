"""DICOMweb routes (PS3.18 10): STOW-RS, QIDO-RS, WADO-RS."""

from functools import partial

from django.urls import path, register_converter

from . import views


class UIDConverter:
    regex = r"[0-9]+(?:\.[0-9]+)*"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(UIDConverter, "uid")


def _dispatch_studies(request, **kwargs):
    """/studies and /studies/{uid} take POST (STOW-RS); /studies also takes GET (QIDO-RS)."""
    if request.method == "POST":
        return views.stow(request, **kwargs)
    if kwargs:
        return views.retrieve(request, **kwargs)
    return views.qido(request, "STUDY")


_dispatch_studies.csrf_exempt = True

S = "studies/<uid:study_uid>"
R = f"{S}/series/<uid:series_uid>"
I = f"{R}/instances/<uid:sop_uid>"

urlpatterns = [
    path("studies", _dispatch_studies),
    path(S, _dispatch_studies),
    path("series", partial(views.qido, level="SERIES")),
    path("instances", partial(views.qido, level="IMAGE")),
    path(f"{S}/series", partial(views.qido, level="SERIES")),
    path(f"{S}/instances", partial(views.qido, level="IMAGE")),
    path(f"{R}/instances", partial(views.qido, level="IMAGE")),
    path(f"{S}/metadata", views.metadata),
    path(R, views.retrieve),
    path(f"{R}/metadata", views.metadata),
    path(I, views.retrieve),
    path(f"{I}/metadata", views.metadata),
    path(f"{I}/frames/<str:frame_list>", views.frames_view),
    path(f"{I}/bulkdata/<str:tag>", views.bulkdata),
]
for prefix in (S, R, I, f"{I}/frames/<str:frame_list>"):
    urlpatterns += [
        path(f"{prefix}/rendered", views.rendered),
        path(f"{prefix}/thumbnail", partial(views.rendered, thumbnail=True)),
    ]
