"""Presets at explicit hosts refuse a mix of environments: a stage identity provider with
production's payment host (or the other way round), or finAPI's sandbox with its live Web Form
host. Tokens of one environment are worthless at the other's host, and a payment that fails
there fails late, as an opaque 401 on money; the mix is a ConfigurationError naming both."""

from __future__ import annotations

import pytest

from aiofinaccess import Everifin, FinApi
from aiofinaccess.errors import ConfigurationError


@pytest.mark.parametrize(
    ("make"),
    [
        lambda: Everifin.paygate_at(Everifin.STAGE_IDP_URL, Everifin.PRODUCTION_PAY_URL),
        lambda: Everifin.paygate_at(Everifin.PRODUCTION_IDP_URL, Everifin.STAGE_PAY_URL),
        lambda: Everifin.at(Everifin.PRODUCTION_IDP_URL, Everifin.STAGE_API_URL),
        lambda: Everifin.at(Everifin.STAGE_IDP_URL, Everifin.PRODUCTION_API_URL + "/"),
        lambda: FinApi.at(FinApi.SANDBOX_URL, web_form_url=FinApi.WEB_FORM_LIVE_URL),
        lambda: FinApi.at(FinApi.LIVE_URL, web_form_url=FinApi.WEB_FORM_SANDBOX_URL),
    ],
)
def test_a_mix_of_environments_is_refused(make: object) -> None:
    with pytest.raises(ConfigurationError, match=r"(?=.*stage|.*sandbox)(?=.*production|.*live)"):
        make()  # type: ignore[operator]


def test_one_environment_or_own_hosts_are_taken() -> None:
    assert Everifin.paygate_at(Everifin.STAGE_IDP_URL, Everifin.STAGE_PAY_URL).api_url is not None
    assert Everifin.at(Everifin.PRODUCTION_IDP_URL, Everifin.PRODUCTION_API_URL).api_url is not None
    assert Everifin.paygate_at(
        "http://127.0.0.1:8080/auth", Everifin.PRODUCTION_PAY_URL, allow_insecure_http=True
    )
    assert (
        FinApi.at(FinApi.LIVE_URL, web_form_url=FinApi.WEB_FORM_LIVE_URL).web_form_url is not None
    )
