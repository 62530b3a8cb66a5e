from django.urls import path
from django.views.generic import RedirectView

from . import api

urlpatterns = [
    path("api/v1/events", api.event_create, name="api-event-create"),
    path("api/v1/events/batch", api.event_batch_create, name="api-event-batch-create"),
    path("api/v1/openapi.json", api.openapi, name="api-openapi"),
    path("", RedirectView.as_view(pattern_name="admin:index", permanent=False)),
]
