"""`fetcher simulate`: serve a simulator until Ctrl-C, with a ready configuration file to point the
fetcher at it. The configuration discovers its tenants: the simulator plays a partner tenant with an
active GDAP relationship to each customer (and an `MLT_` placeholder, which discovery skips)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Sequence
from pathlib import Path

from fetcher.simulator.consent import consent_tenants
from fetcher.simulator.faults import FaultOption
from fetcher.simulator.partner import partner_tenant_id, relationships_for
from fetcher.simulator.server import RunningSimulator, serving_simulator
from fetcher.simulator.simulator import Simulator
from fetcher.simulator.tenants import SimTenant, generate_tenants

CONFIG_FILE_NAME = "fetcher.toml"


def _announce(running: RunningSimulator, config: Path, faults: Sequence[FaultOption]) -> None:
    sim = running.simulator
    customers = sum(1 for tenant in sim.tenants.values() if not tenant.partner)
    print(f"Simulating {customers} customer tenants and their partner (seed {sim.seed}, newest day {sim.newest_day}).")
    for option in faults:
        print(f"  fault:          {option.describe()}")
    print(f"  origin:         {running.origin}")
    print(f"  Graph base URL: {running.graph_base_url}")
    print(f"  CA file:        {running.ca_file}")
    print(f"  config:         {config}")
    print(f'  sign-in page:   {running.origin}/devicelogin  (for [auth] method = "device_code")')
    print(f"Check: fetcher --config {config} tenants check")
    print(f"Run: fetcher --config {config} run    (Ctrl-C stops the simulator)", flush=True)


async def _serve(sim: Simulator, *, port: int, out_dir: Path, faults: Sequence[FaultOption]) -> None:
    async with serving_simulator(sim, port=port, tls_dir=out_dir / "tls") as running:
        database_url = f"sqlite+aiosqlite:///{(out_dir / 'securescores.db').resolve()}"
        partner = next(tenant.tenant_id for tenant in sim.tenants.values() if tenant.partner)
        config = running.write_config(out_dir / CONFIG_FILE_NAME, database_url=database_url, partner_tenant_id=partner)
        _announce(running, config, faults)
        await asyncio.Event().wait()  # until cancelled by Ctrl-C


def add_faults(sim: Simulator, faults: Sequence[FaultOption]) -> None:
    """Script each `--fault` on its tenant, or on every customer (never the partner: discovery stays whole).

    Raises KeyError naming a tenant the simulator does not hold."""
    customers = [tenant.tenant_id for tenant in sim.tenants.values() if not tenant.partner]
    for option in faults:
        if option.tenant_id is not None and option.tenant_id not in customers:
            raise KeyError(f"--fault: no customer tenant {option.tenant_id} in this simulator (seed {sim.seed})")
        for tenant_id in customers if option.tenant_id is None else [option.tenant_id]:
            sim.add_fault(tenant_id, option.fault)


def run_standalone(
    *,
    tenants: int,
    port: int,
    seed: int,
    latency_ms: float,
    out_dir: Path,
    consent_states: bool = False,
    faults: Sequence[FaultOption] = (),
) -> None:
    """Serve `tenants` healthy customer tenants and their partner tenant on `port` until interrupted; with
    `consent_states`, also one customer in each state `fetcher tenants check` tells apart, named after it;
    `faults` scripted (`add_faults`). Raises KeyError for a fault's unknown tenant, before serving."""
    customers = generate_tenants(tenants, seed=seed)
    if consent_states:
        cast = consent_tenants(seed=seed + 1)
        customers += [dataclasses.replace(t, name=f"{scenario}: {t.name}") for scenario, t in cast.items()]
    partner = SimTenant(partner_tenant_id(seed), "Simulated partner", partner=True)
    relationships = relationships_for([(tenant.tenant_id, tenant.name) for tenant in customers])
    sim = Simulator([partner, *customers], seed=seed, latency_ms=latency_ms, relationships=relationships)
    add_faults(sim, faults)
    out_dir.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(sim, port=port, out_dir=out_dir, faults=faults))
    print("Simulator stopped.")
