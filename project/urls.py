from django.contrib import admin
from django.urls import include, path

admin.site.site_header = "Event hub console"
admin.site.site_title = "Event hub"
admin.site.index_title = "Records"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("tracking.urls")),
]
