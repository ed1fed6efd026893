from django.conf import settings
from django.contrib import admin
from django.urls import include, path, re_path

from orders import api, views

urlpatterns = [
    # The token is one path segment; a trailing slash is tolerated because senders add one.
    re_path(r"^webhook/(?P<token>[^/]+)/?$", views.webhook, name="webhook"),
    path("health", views.health, name="health"),
    # The read-only API for the cashback site (orders.api; its schema at api/v1/openapi.json).
    path("api/v1/", api.urls()),
    # The admin's front page is the overview (orders.views.overview); Django's list of applications
    # stays in the sidebar of every page and at apps/.
    path(settings.ADMIN_URL, admin.site.admin_view(views.overview), name="overview"),
    path(f"{settings.ADMIN_URL}apps/", admin.site.admin_view(admin.site.index), name="admin_apps"),
    path(settings.ADMIN_URL, admin.site.urls),
    # The admin's language switch (Django's set_language view: a POST that stores the choice).
    path("i18n/", include("django.conf.urls.i18n")),
]

handler404 = "epnhook.errors.not_found"
handler500 = "epnhook.errors.server_error"
