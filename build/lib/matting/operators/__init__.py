"""Operators (Airflow-facing): ``matting.operators.matting`` (background removal, archive) and
``matting.operators.idphoto`` (ID photos, human review)."""
