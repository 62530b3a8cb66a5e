from django.apps import AppConfig
from django.db.models.signals import post_migrate


class TrackingConfig(AppConfig):
    name = "tracking"
    verbose_name = "Event hub"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from .roles import roles_sync
        from .services import routes  # noqa: F401 (connects the receivers that cancel a removed route's deliveries)

        # After the permissions exist (auth's own post_migrate runs first: it is installed before us).
        post_migrate.connect(roles_sync, sender=self, dispatch_uid="tracking.roles_sync")
