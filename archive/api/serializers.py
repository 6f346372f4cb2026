"""The HTTP boundary of the archive's JSON API."""

from rest_framework import serializers

from ..models import FixityCheck, Modality, Study

AE_TITLE_CHARS = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 -_.")


class ModalitySerializer(serializers.ModelSerializer):
    class Meta:
        model = Modality
        fields = ["id", "ae_title", "host", "port", "description"]

    def validate_ae_title(self, value: str) -> str:
        value = value.strip()
        if not value or len(value) > 16 or not set(value) <= AE_TITLE_CHARS or "\\" in value:
            raise serializers.ValidationError(f"an AE title is 1 to 16 printable characters, got {value!r}")
        return value

    def validate_port(self, value: int) -> int:
        if not 1 <= value <= 65535:
            raise serializers.ValidationError(f"port must be 1 to 65535, got {value}")
        return value


class StudySerializer(serializers.ModelSerializer):
    patient_id = serializers.CharField(source="patient.patient_id", read_only=True)
    patient_name = serializers.CharField(source="patient.patient_name", read_only=True)

    class Meta:
        model = Study
        fields = [
            "study_uid", "patient_id", "patient_name", "study_date", "study_description",
            "accession_number", "modalities", "num_series", "num_instances", "visibility",
        ]
        read_only_fields = [f for f in fields if f != "visibility"]


class FixityCheckSerializer(serializers.ModelSerializer):
    class Meta:
        model = FixityCheck
        fields = ["id", "study_uid", "state", "percent", "report", "error", "created", "finished"]
        read_only_fields = ["state", "percent", "report", "error", "created", "finished"]
