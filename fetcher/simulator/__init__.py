"""A faithful simulator of Microsoft Entra ID's token endpoint and Microsoft Graph's secureScores API,
served over real HTTPS on loopback, deterministic from a seed.

    sim = Simulator(generate_tenants(3, seed=1), seed=1)
    with running_simulator(sim) as running:
        ...  # azure-identity with authority=running.authority_host, Graph at running.graph_base_url

Modules, each owning one thing: `tenants` (who), `catalog` and `data` (what a day holds), `pages` (paging),
`tokens` (JWTs), `entra` (token endpoint rules), `graph` (Graph's wording), `faults` and `hostile`
(scripted trouble), `devicecode` and `delegated` (a person's sign-in), `records` (what was seen),
`simulator` (state), `app` (HTTP), `server` (serving),
`tls` (certificates), `demo` and `standalone` (ready-made uses).
"""

from __future__ import annotations

from fetcher.simulator.demo import demo_simulator
from fetcher.simulator.devicecode import SimUser
from fetcher.simulator.entra import TokenRefusal
from fetcher.simulator.faults import DEFAULT_WARNING, PROVIDER_TIMEOUT_WARNING, Fault, FaultKind, Hostile
from fetcher.simulator.records import RequestRecord
from fetcher.simulator.server import RunningSimulator, running_simulator, serving_simulator
from fetcher.simulator.simulator import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, Simulator
from fetcher.simulator.standalone import run_standalone
from fetcher.simulator.tenants import SimTenant, generate_tenants
from fetcher.simulator.tls import ClientCertificate, client_ssl_context, generate_client_certificate

__all__ = [
    "DEFAULT_CLIENT_ID",
    "DEFAULT_CLIENT_SECRET",
    "DEFAULT_WARNING",
    "PROVIDER_TIMEOUT_WARNING",
    "ClientCertificate",
    "Fault",
    "FaultKind",
    "Hostile",
    "RequestRecord",
    "RunningSimulator",
    "SimTenant",
    "SimUser",
    "Simulator",
    "TokenRefusal",
    "client_ssl_context",
    "demo_simulator",
    "generate_client_certificate",
    "generate_tenants",
    "run_standalone",
    "running_simulator",
    "serving_simulator",
]
