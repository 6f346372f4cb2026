from rest_framework.routers import DefaultRouter

from . import views

router = DefaultRouter(trailing_slash=False)
router.register("modalities", views.ModalityViewSet, basename="modality")
router.register("studies", views.StudyViewSet, basename="study")
router.register("fixity-checks", views.FixityCheckViewSet, basename="fixity-check")

urlpatterns = router.urls
