from django.contrib.auth import views as auth_views
from django.urls import include, path

from . import api
from .views import api_docs, bulk_replay, connections, dashboard, event_types, events, leads, offline, routes, trash

console = [
    path("", events.home, name="home"),
    path("dashboard/", dashboard.dashboard, name="dashboard"),
    path("events/", events.event_list, name="event-list"),
    path("events/<uuid:uuid>/", events.event_detail, name="event-detail"),
    path("events/<uuid:uuid>/replay", events.event_replay_view, name="event-replay"),
    path("events/<uuid:uuid>/deliveries", events.event_deliveries, name="event-deliveries"),
    path("deliveries/<int:pk>/raw", events.raw_event, name="delivery-raw"),
    path("bulk-replay/new", bulk_replay.bulk_replay_new, name="bulk-replay-new"),
    path("bulk-replay/<int:pk>/", bulk_replay.bulk_replay_detail, name="bulk-replay-detail"),
    path("bulk-replay/<int:pk>/cancel", bulk_replay.bulk_replay_cancel_view, name="bulk-replay-cancel"),
    path("routes/", routes.route_list, name="route-list"),
    path("routes/new/", routes.route_new, name="route-new"),
    path("routes/<int:pk>/", routes.route_edit, name="route-edit"),
    path("routes/<int:pk>/delete", routes.route_delete_view, name="route-delete"),
    path("routes/vendor-part", routes.route_vendor_part, name="route-vendor"),
    path("routes/mapping-row", routes.route_mapping_row, name="route-mapping-row"),
    path("routes/preview", routes.route_preview_view, name="route-preview"),
    path("connections/", connections.connection_list, name="connection-list"),
    path("connections/new/", connections.connection_new, name="connection-new"),
    path("connections/<int:pk>/", connections.connection_edit, name="connection-edit"),
    path("connections/<int:pk>/test", connections.connection_test_view, name="connection-test"),
    path("connections/<int:pk>/pause", connections.connection_pause_view, name="connection-pause"),
    path(
        "connections/<int:pk>/circuit-reset", connections.connection_circuit_reset_view, name="connection-circuit-reset"
    ),
    path("leads/", leads.lead_list, name="lead-list"),
    path("leads/<uuid:uuid>/", leads.lead_detail, name="lead-detail"),
    path("leads/<uuid:uuid>/changes", leads.lead_change, name="lead-change"),
    path("leads/changes/<int:pk>/retry", leads.lead_change_retry_view, name="lead-retry"),
    path("event-types/", event_types.event_type_list, name="event-type-list"),
    path("event-types/new/", event_types.event_type_create, name="event-type-create"),
    path("event-types/row", event_types.event_type_row, name="event-type-row"),
    path("event-types/sync/<int:pk>", event_types.event_types_sync, name="event-types-sync"),
    path("event-types/<int:pk>/", event_types.event_type_detail, name="event-type-detail"),
    path("event-types/<int:pk>/edit/", event_types.event_type_edit, name="event-type-edit"),
    path("event-types/<int:pk>/push", event_types.event_type_push, name="event-type-push"),
    path("event-types/conflicts/<int:pk>/", event_types.conflict_detail, name="event-type-conflict"),
    path("event-types/conflicts/<int:pk>/resolve", event_types.conflict_resolve, name="event-type-conflict-resolve"),
    path("trash/", trash.trash_list, name="trash-list"),
    path("trash/pull/<int:pk>", trash.trash_pull, name="trash-pull"),
    path("trash/dismiss", trash.trash_dismiss_bulk, name="trash-dismiss-bulk"),
    path("trash/<int:pk>/", trash.trash_detail, name="trash-detail"),
    path("trash/<int:pk>/replay", trash.trash_replay, name="trash-replay"),
    path("trash/<int:pk>/dismiss", trash.trash_dismiss_one, name="trash-dismiss"),
    path("offline/", offline.offline_page, name="offline"),
    path("offline/send", offline.offline_send, name="offline-send"),
    path("offline/import", offline.offline_import, name="offline-import"),
    path("offline/node-row", offline.offline_node_row, name="offline-node-row"),
]

urlpatterns = [
    path("api/v1/events", api.event_create, name="api-event-create"),
    path("api/v1/events/batch", api.event_batch_create, name="api-event-batch-create"),
    path("api/v1/openapi.json", api.openapi, name="api-openapi"),
    path("api/v1/docs", api_docs.api_docs, name="api-docs"),
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", include((console, "tracking"), namespace="console")),
]
