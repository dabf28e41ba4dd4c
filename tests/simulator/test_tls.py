"""TLS on loopback: the certificate serves 127.0.0.1 and localhost, and old protocols are refused."""

from __future__ import annotations

import ssl

import aiohttp
import pytest

from fetcher.simulator import RunningSimulator, client_ssl_context


async def test_certificate_is_valid_for_localhost(running: RunningSimulator, session: aiohttp.ClientSession) -> None:
    async with session.get(f"https://localhost:{running.port}/nowhere") as response:
        assert response.status == 404


async def test_client_without_the_ca_refuses_the_server(running: RunningSimulator) -> None:
    async with aiohttp.ClientSession() as untrusting:
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await untrusting.get(f"{running.origin}/nowhere")


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated:DeprecationWarning")
async def test_tls_1_1_is_refused(running: RunningSimulator) -> None:
    context = client_ssl_context(running.ca_file)
    context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    context.maximum_version = ssl.TLSVersion.TLSv1_1
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as old:
        with pytest.raises(aiohttp.ClientError):
            await old.get(f"{running.origin}/nowhere")
