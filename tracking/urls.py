from django.contrib.auth import views as auth_views
from django.urls import include, path

from . import api
from .views import events

console = [
    path("", events.home, name="home"),
    path("events/", events.event_list, name="event-list"),
    path("events/<uuid:uuid>/", events.event_detail, name="event-detail"),
    path("events/<uuid:uuid>/replay", events.event_replay_view, name="event-replay"),
    path("deliveries/<int:pk>/raw", events.raw_event, name="delivery-raw"),
]

urlpatterns = [
    path("api/v1/events", api.event_create, name="api-event-create"),
    path("api/v1/events/batch", api.event_batch_create, name="api-event-batch-create"),
    path("api/v1/openapi.json", api.openapi, name="api-openapi"),
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", include((console, "tracking"), namespace="console")),
]
