"""The archive's JSON API: modalities, studies' visibility, fixity checks."""

from django.db import transaction
from rest_framework import mixins, permissions, viewsets

from ..auth import require_curator
from ..errors import NotFound
from ..models import FixityCheck, Modality, Study
from .. import tasks
from .serializers import FixityCheckSerializer, ModalitySerializer, StudySerializer


class IsCurator(permissions.BasePermission):
    """Everything here, reads included, is for curators: AE addresses and audit
    reports are not public."""

    def has_permission(self, request, view) -> bool:
        require_curator(request.user)
        return True


class ModalityViewSet(viewsets.ModelViewSet):
    queryset = Modality.objects.all()
    serializer_class = ModalitySerializer
    permission_classes = [IsCurator]


class StudyViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.UpdateModelMixin, viewsets.GenericViewSet):
    serializer_class = StudySerializer
    lookup_field = "study_uid"
    lookup_value_regex = r"[0-9.]+"

    def get_queryset(self):
        return Study.objects.visible_to(self.request.user).select_related("patient").order_by("-created")

    def get_object(self):
        study = self.get_queryset().filter(study_uid=self.kwargs["study_uid"]).first()
        if study is None:
            raise NotFound(f"no study {self.kwargs['study_uid']}")
        return study


class FixityCheckViewSet(mixins.CreateModelMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    queryset = FixityCheck.objects.all()
    serializer_class = FixityCheckSerializer
    permission_classes = [IsCurator]

    def perform_create(self, serializer):
        check = serializer.save(requested_by=self.request.user)
        transaction.on_commit(lambda: tasks.run_fixity_check.delay(check.pk))
