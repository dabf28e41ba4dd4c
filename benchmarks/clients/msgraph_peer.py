"""The peer: the same fetch done with Microsoft's official Graph SDK for Python (`msgraph-sdk`).

One `GraphServiceClient` per tenant (each tenant has its own `ClientSecretCredential`, as with any
multi-tenant app), all on one `httpx.AsyncClient` that trusts the simulator's CA, the request adapter's
`base_url` pointed at the simulator. Each tenant: `security.secure_scores.get()` with `$top=days`, then
`with_url(@odata.nextLink).get()` until `days` objects came; every answer parsed into the SDK's models
(`SecureScore`, `ControlScore`, ...). Nothing is stored. `concurrency` tenants are fetched at once (each
tenant's pages one after another), so at most `concurrency` list requests are in flight.

Prints one JSON line: objects and control scores parsed, and the requests made.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
from azure.identity.aio import ClientSecretCredential
from kiota_abstractions.base_request_configuration import RequestConfiguration
from kiota_authentication_azure.azure_identity_authentication_provider import AzureIdentityAuthenticationProvider
from msgraph.generated.security.secure_scores.secure_scores_request_builder import SecureScoresRequestBuilder
from msgraph.graph_request_adapter import GraphRequestAdapter
from msgraph.graph_service_client import GraphServiceClient
from msgraph_core import GraphClientFactory

from benchmarks.clients.common import read_tenants, simulator_arguments


class Peer:
    def __init__(self, args: argparse.Namespace, http: httpx.AsyncClient) -> None:
        self.args = args
        self.http = http
        self.secret = Path(args.client_secret_file).read_text(encoding="utf-8").strip()
        self.totals = {"score_days": 0, "control_rows": 0, "comparative_rows": 0, "list_requests": 0}

    async def tenant(self, tenant_id: str) -> None:
        args = self.args
        credential = ClientSecretCredential(
            tenant_id, args.client_id, self.secret, authority=args.origin, connection_verify=args.ca_file
        )
        try:
            auth = AzureIdentityAuthenticationProvider(
                credential, scopes=[f"{args.origin}/.default"], allowed_hosts=[urlsplit(args.origin).hostname or ""]
            )
            adapter = GraphRequestAdapter(auth, client=self.http)
            adapter.base_url = f"{args.origin}/v1.0"
            client = GraphServiceClient(request_adapter=adapter)
            query = SecureScoresRequestBuilder.SecureScoresRequestBuilderGetQueryParameters(top=args.days)
            page = await client.security.secure_scores.get(RequestConfiguration(query_parameters=query))
            self.totals["list_requests"] += 1
            scores = list(page.value or []) if page else []
            while page is not None and page.odata_next_link and len(scores) < args.days:
                page = await client.security.secure_scores.with_url(page.odata_next_link).get()
                self.totals["list_requests"] += 1
                scores.extend(page.value or [] if page else [])
        finally:
            await credential.close()
        for score in scores[: args.days]:
            self.totals["score_days"] += 1
            self.totals["control_rows"] += len(score.control_scores or [])
            self.totals["comparative_rows"] += len(score.average_comparative_scores or [])

    async def run(self, tenants: list[str]) -> None:
        queue = list(reversed(tenants))

        async def worker() -> None:
            while queue:
                await self.tenant(queue.pop())

        await asyncio.gather(*(worker() for _ in range(min(len(tenants), self.args.concurrency))))


async def main(args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    limits = httpx.Limits(max_connections=args.concurrency + 8, max_keepalive_connections=args.concurrency + 8)
    http = GraphClientFactory.create_with_default_middleware(
        client=httpx.AsyncClient(verify=args.ca_file, limits=limits, timeout=120.0)
    )
    async with http:
        peer = Peer(args, http)
        await peer.run([tenant_id for tenant_id, _ in read_tenants(args.tenants_file)])
    return {**peer.totals, "seconds": time.perf_counter() - started}


def arguments() -> argparse.Namespace:
    return simulator_arguments("msgraph_peer", __doc__).parse_args()


if __name__ == "__main__":
    print(orjson.dumps(asyncio.run(main(arguments()))).decode())
