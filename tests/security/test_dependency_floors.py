"""No dependency floor in pyproject.toml admits a release with a published advisory we know of.

Each floor (the ``>=`` bound of every requirement naming the package, in the dependencies and
in every extra) is checked against a table of known-bad ranges, each with the advisory that
makes it bad. When an advisory is published for a release above a floor, add it here: the test
fails until the floor is raised.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"

# package -> (releases that are bad, why). Every entry names its advisory or reason.
KNOWN_BAD: dict[str, list[tuple[str, str]]] = {
    "aiohttp": [
        (
            "<3.14.3",
            "CVE-2026-69244 / GHSA-cq5v-8q36-5273 (out-of-bounds read in the C response "
            "parser); and a cross-origin redirect dropped only the first Authorization or "
            "Cookie header (aio-libs/aiohttp#13180, released in 3.14.3): BearerAuth's "
            "origin guarantee rests on it",
        ),
        ("<3.14.2", "CVE-2026-69243 / GHSA-mfx4-hv73-q22v (smuggling via WebSocket upgrade)"),
        ("<3.14.1", "GHSA-2fqr-mr3j-6wp8, GHSA-4fvr-rgm6-gqmc and others (3.14.1)"),
    ],
    "starlette": [
        (
            "<1.0.1",
            "CVE-2026-48710 / GHSA-86qp-5c8j-p5mr (a malformed Host header poisons "
            "request.url, which the connect routes use for redirect_uri and the app's origin)",
        ),
        ("<0.49.1", "CVE-2025-62727 (Range header DoS in FileResponse)"),
    ],
    "cryptography": [
        (
            "<50.0.0",
            "CVE-2026-69247 / GHSA-g6cj-pr64-35w5 (PKCS#7 decryption Bleichenbacher oracle)",
        ),
        (
            "<49.0.0",
            "CVE-2026-69249 / GHSA-jwv3-5hgf-82ww, CVE-2026-69248 / GHSA-m2h6-j472-rp4c",
        ),
        ("<48.0.1", "GHSA-537c-gmf6-5ccf (vulnerable OpenSSL in the wheels)"),
        ("<46.0.5", "CVE-2026-26007 / GHSA-r6ph-v2qm-q3c2 (SECT curve subgroup attack)"),
        ("<44.0.1", "CVE-2024-12797 / GHSA-79v4-65xg-pq4g (OpenSSL in the wheels)"),
    ],
    # Not advisories: what the store tests found below 8.0 (issue 22, finding 18b).
    "redis": [
        ("<8.0.0", "the cluster layout's change feed on one server times out (5.x-7.x)"),
        ("<5.0.2", "5.0.1: get() hangs against a server that is down; 5.0.0: no from_pool"),
    ],
    # Not an advisory: these releases require starlette<1.0.0, so they cannot be installed
    # with starlette's floor (fastapi 0.132.1 pins <1.0.0; 0.133.0 asks only >=0.40.0).
    "fastapi": [("<0.133.0", "requires starlette<1.0.0, below starlette's fixed release")],
}


def _requirements() -> list[Requirement]:
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    lines = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        lines.extend(extra)
    return [Requirement(line) for line in lines]


def _floor(specifier: SpecifierSet) -> Version | None:
    floors = [Version(s.version) for s in specifier if s.operator in (">=", "==", "~=")]
    return max(floors, default=None)


@pytest.mark.parametrize("package", sorted(KNOWN_BAD))
def test_no_floor_admits_a_known_bad_release(package: str) -> None:
    named = [req for req in _requirements() if req.name.lower() == package]
    assert named, f"{package} is no longer in pyproject.toml: drop it from KNOWN_BAD"
    for requirement in named:
        floor = _floor(requirement.specifier)
        assert floor is not None, f"{requirement} has no floor"
        for bad, why in KNOWN_BAD[package]:
            assert floor not in SpecifierSet(bad), f"{requirement} admits {bad}: {why}"


def test_the_table_reads_floors_as_intended() -> None:
    """A guard on the check itself: an old floor is caught, a fixed one passes."""
    assert Version("3.14") in SpecifierSet("<3.14.3")
    assert _floor(SpecifierSet(">=3.14.3")) == Version("3.14.3")
    assert _floor(SpecifierSet("")) is None
