"""An auth manager for the UI test: Airflow's SimpleAuthManager, except that the user ``clerk`` may
not read the DAG ``id_photo_batch`` (SimpleAuthManager alone grants every role every DAG)."""

from __future__ import annotations

from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager

RESTRICTED = {"clerk": {"id_photo_batch"}}


class RestrictedAuthManager(SimpleAuthManager):
    def is_authorized_dag(self, *, method, user, access_entity=None, details=None) -> bool:
        if details is not None and details.id in RESTRICTED.get(user.get_name(), set()):
            return False
        return super().is_authorized_dag(method=method, user=user, access_entity=access_entity, details=details)
