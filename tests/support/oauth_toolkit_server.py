"""A real, independent OAuth 2.0 server for the discovery tests: django-oauth-toolkit.

It runs with OpenID Connect off, so it publishes only RFC 8414 metadata, at the path-inserted
location ``/.well-known/oauth-authorization-server/o`` for the issuer ``{origin}/o``; its
``/o/.well-known/openid-configuration`` answers 404. One confidential client may use the
client-credentials grant. Run as ``python -m tests.support.oauth_toolkit_server DBFILE``:
it prints one JSON line (``issuer``, ``client_id``, ``client_secret``) when ready and serves
until killed.
"""

from __future__ import annotations

import json
import sys
from wsgiref.simple_server import WSGIRequestHandler, make_server

import django
from django.conf import settings
from django.urls import include, path

CLIENT_ID = "aiofinaccess-test"
CLIENT_SECRET = "dot-test-secret"  # a throwaway client of a throwaway server


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        """No access log: stdout carries the ready line only."""


def urlpatterns() -> list[object]:
    from oauth2_provider.views import OAuthServerMetadataView  # noqa: PLC0415  (after setup)

    return [
        path("o/", include("oauth2_provider.urls")),
        # RFC 8414 3: the well-known segment between host and the issuer's path.
        path(
            ".well-known/oauth-authorization-server/<path:issuer_path>",
            OAuthServerMetadataView.as_view(),
        ),
    ]


def main(database: str) -> None:
    settings.configure(
        SECRET_KEY="test-only-not-a-secret",
        ALLOWED_HOSTS=["127.0.0.1"],
        ROOT_URLCONF=__name__,
        INSTALLED_APPS=["django.contrib.auth", "django.contrib.contenttypes", "oauth2_provider"],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": database}},
        MIDDLEWARE=[],
        USE_TZ=True,
        OAUTH2_PROVIDER={"OIDC_ENABLED": False, "ACCESS_TOKEN_EXPIRE_SECONDS": 300},
    )
    django.setup()
    globals()["urlpatterns"] = urlpatterns()
    from django.core.management import call_command  # noqa: PLC0415
    from django.core.wsgi import get_wsgi_application  # noqa: PLC0415
    from oauth2_provider.models import Application  # noqa: PLC0415

    call_command("migrate", verbosity=0)
    Application.objects.create(
        name="aiofinaccess",
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_CLIENT_CREDENTIALS,
    )
    server = make_server("127.0.0.1", 0, get_wsgi_application(), handler_class=_Quiet)
    origin = f"http://127.0.0.1:{server.server_port}"
    ready = {"issuer": origin + "/o", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
    print(json.dumps(ready), flush=True)  # noqa: T201  (the ready line the test reads)
    server.serve_forever()


if __name__ == "__main__":
    main(sys.argv[1])
