from django.apps import AppConfig


class TrackingConfig(AppConfig):
    name = "tracking"
    verbose_name = "Event hub"
    default_auto_field = "django.db.models.BigAutoField"
