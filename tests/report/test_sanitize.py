"""Graph's remediation HTML is untrusted: sanitised for the page (checked in headless Chromium against a
loopback canary server), plain text for the text formats."""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from fetcher.config import DatabaseConfig, Purpose, load_config
from fetcher.report.collect import tenant_report
from fetcher.report.html import tenant_page
from fetcher.report.sanitize import remediation_html, remediation_text
from tests.report.conftest import days_ago, score_day, store, write_report_config
from tests.report.test_html import CHROMIUM
from tests.report.test_profile_views import profile, store_profiles

A = "aaaaaaaa-0000-4000-8000-00000000000a"


def hostile_remediation(origin: str) -> str:
    """Every way we know for HTML to run script or fetch something, each aimed at the canary server."""
    return (
        "<p>Step one: <b>keep this text</b>.</p>"
        f"<script>document.title='pwned';fetch('{origin}/script')</script>"
        f"<img src=\"{origin}/img.png\" onerror=\"document.title='pwned';fetch('{origin}/onerror')\">"
        f"<a href=\"javascript:fetch('{origin}/javascript')\">javascript link</a>"
        f'<a href="{origin}/plain-http">plain http link</a>'
        f'<p onmouseover="fetch(\'{origin}/handler\')" style="background:url({origin}/style.png)">styled</p>'
        f'<iframe src="{origin}/frame"></iframe><object data="{origin}/object"></object>'
        f'<link rel="stylesheet" href="{origin}/link.css"><style>@import url({origin}/import.css);</style>'
        f'<svg><image href="{origin}/svg-image.png"/></svg><video poster="{origin}/poster.png"></video>'
        f'<meta http-equiv="refresh" content="0;url={origin}/refresh">'
        f'<form action="{origin}/form"><input type="image" src="{origin}/input.png"></form>'
        f'<body onload="fetch(\'{origin}/onload\')"><base href="{origin}/base/">'
    )


def test_the_sanitizer_keeps_text_lists_and_https_links_and_drops_the_rest() -> None:
    got = remediation_html(
        '<p>Do <b>this</b></p><ol><li><a href="https://learn.microsoft.com/x" onclick="x()">docs</a></li></ol>'
        '<img src="https://tracker.example/p.png"><script>alert(1)</script>'
    )

    assert got == (
        '<p>Do <b>this</b></p><ol><li><a href="https://learn.microsoft.com/x" rel="noopener noreferrer nofollow">'
        "docs</a></li></ol>"
    )


def test_text_formats_get_the_remediation_as_one_line_of_text() -> None:
    got = remediation_text("<p>Open <b>A &amp; B</b>.</p><ol><li>One</li><li>Two</li></ol><script>x()</script>")

    assert got == "Open A & B. One Two"


class Canary:
    """A loopback HTTP server that records every request: if the page loads anything, it shows up here."""

    def __init__(self) -> None:
        self.paths: list[str] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.paths.append(request.path)
        return web.Response(body=b"GIF89a", content_type="image/gif")


@pytest.fixture
async def canary() -> AsyncIterator[tuple[Canary, str]]:
    recorder = Canary()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", recorder.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield recorder, f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def _chromium(binary: str, page: Path, *modes: str) -> str:
    """Headless Chromium on `page` (one mode, e.g. --dump-dom), in the test's loop so the canary answers."""
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile_dir:
        process = await asyncio.create_subprocess_exec(
            binary,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile_dir}",
            "--window-size=1280,2400",
            "--virtual-time-budget=3000",
            *modes,
            page.as_uri(),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, _ = await asyncio.wait_for(process.communicate(), timeout=120)
    return out.decode()


@pytest.fixture
def browser() -> str:
    """Debian's chromium, as test_html requires it (skipped where missing, except under CI)."""
    if CHROMIUM is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is not installed; .ci/run installs Debian's chromium package")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return CHROMIUM


@pytest.fixture
async def sqlite_report_engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    from fetcher.store.engine import create_engine, ensure_schema

    engine = create_engine(DatabaseConfig(url=f"sqlite+aiosqlite:///{tmp_path / 'hostile.db'}"))
    await ensure_schema(engine)
    yield engine
    await engine.dispose()


async def test_a_hostile_profile_runs_no_script_and_loads_nothing_in_chromium(
    sqlite_report_engine: AsyncEngine, canary: tuple[Canary, str], browser: str, tmp_path: Path
) -> None:
    recorder, origin = canary
    engine = sqlite_report_engine
    await store(engine, score_day(A, days_ago(1), {"mfa": 1.0}), score_day(A, days_ago(0), {"mfa": 2.0}))
    hostile = profile(A, "mfa") | {"remediation": hostile_remediation(origin), "actionUrl": "javascript:alert(1)"}
    await store_profiles(engine, hostile)
    now = datetime.now(UTC)
    config = load_config(
        write_report_config(tmp_path / "report.toml", "sqlite+aiosqlite:///unused.db", [(A, "Alpha")]),
        {"REPORT_SECRET": "unused"},
        purpose=Purpose.DATABASE,
    )
    built = await tenant_report(engine, config, A, since=None, now=now, max_age=timedelta(hours=48))
    page = tmp_path / "hostile.html"
    page.write_text(tenant_page(built), encoding="utf-8")
    witness = tmp_path / "witness.html"
    witness.write_text(f'<!DOCTYPE html><img src="{origin}/witness.png">', encoding="utf-8")

    await _chromium(browser, witness, "--dump-dom")  # proves the canary sees what a page loads
    dumped = await _chromium(browser, page, "--dump-dom")
    await _chromium(browser, page, f"--screenshot={tmp_path / 'hostile.png'}")

    assert recorder.paths == ["/witness.png"]
    assert "pwned" not in dumped
    assert "keep this text" in dumped
    assert "javascript link" in dumped
    text = page.read_text(encoding="utf-8").lower()
    for banned in ("<script", "onerror", "onmouseover", "onload", "javascript:", "<img", "<iframe", "<object", origin):
        assert banned not in text, banned
    assert (tmp_path / "hostile.png").stat().st_size > 10_000
