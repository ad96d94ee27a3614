"""Django's URLs: admin, management API, portal and operational endpoints.

The LLM routes (``/v1/``, ``/v1beta/``) never reach Django: ``asgi.py`` sends them to
the Channels consumers first.
"""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import path

from proxy import views
from proxy.api.app import api

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", api.urls),
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    path("metrics", views.metrics_view, name="metrics"),
    path(
        "accounts/login/",
        auth_views.LoginView.as_view(
            template_name="portal/login.html", next_page="portal", redirect_authenticated_user=True
        ),
        name="login",
    ),
    path("accounts/logout/", auth_views.LogoutView.as_view(next_page="login"), name="logout"),
    path("", views.portal, name="portal"),
    path("keys/new", views.portal_create_key, name="portal-create-key"),
    path("keys/<int:key_id>/revoke", views.portal_revoke_key, name="portal-revoke-key"),
]
