"""Provider metadata for Airflow's ``apache_airflow_provider`` entry point: what Admin -> Providers
lists, which modules hold this package's operators, sensors, triggers and notifiers, and the
``[matting]`` configuration section (``airflow config list --section matting``)."""

from __future__ import annotations

from matting import __version__, settings

INTEGRATION = "Matting (background removal and ID photos)"


def get_provider_info() -> dict:
    return {
        "package-name": "airflow-matting",
        "name": "Matting",
        "description": (
            "Background removal with rembg's ONNX models (CPU, CUDA or TensorRT through ONNX Runtime), "
            "standard ID photos with a quality gate and human review, and archiving of image batches "
            "from local folders, S3 and SFTP."
        ),
        "versions": [__version__],
        "integrations": [{"integration-name": INTEGRATION, "tags": ["software"]}],
        "operators": [
            {
                "integration-name": INTEGRATION,
                "python-modules": ["matting.operators.matting", "matting.operators.idphoto"],
            }
        ],
        "sensors": [{"integration-name": INTEGRATION, "python-modules": ["matting.sensors.new_files"]}],
        "triggers": [
            {
                "integration-name": INTEGRATION,
                "python-modules": ["matting.triggers.new_files", "matting.triggers.s3_events"],
            }
        ],
        "notifications": ["matting.notifiers.webhook.WebhookNotifier"],
        "plugins": [{"name": "matting", "plugin-class": "matting.plugin.MattingPlugin"}],
        "config": settings.provider_config(),
    }
