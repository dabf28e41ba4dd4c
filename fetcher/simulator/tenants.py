"""Simulated tenants: what each one is (`SimTenant`) and a deterministic supply of them for demos and
benchmarks (`generate_tenants`)."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass

from fetcher.simulator.faults import Fault

_PREFIXES = (
    "Contoso", "Fabrikam", "Northwind", "Tailspin", "Woodgrove", "Adventure", "Litware", "Proseware",
    "Wide World", "Alpine", "Coho", "Lucerne", "Margie's", "Trey", "Fourth", "Humongous", "Blue Yonder",
    "Consolidated", "Southridge", "Wingtip", "Relecloud", "VanArsdel", "Munson's", "Datum", "Bellows",
    "Lamna", "Nod", "Olympia", "Tasmanian", "Graphic",
)  # fmt: skip
_TRADES = (
    "Traders", "Toys", "Bank", "Works", "Importers", "Ski House", "Winery", "Publishing", "Travel", "Research",
    "Coffee", "Insurance", "Airlines", "Power & Light", "Messenger", "Video", "Pickles", "Healthcare",
    "Logistics", "Dental", "Architects", "Legal", "Foods", "Engineering",
)  # fmt: skip
_FORMS = ("Ltd", "GmbH", "Inc.", "LLC", "B.V.", "AG", "S.A.", "Pty Ltd", "Oy", "AB")


@dataclass(frozen=True)
class SimTenant:
    """One customer tenant as the simulator plays it."""

    tenant_id: str  # GUID
    name: str
    days: int = 90  # days of history available (Graph keeps 90)
    empty: bool = False  # the list answers {"value": []}
    registered: bool = True  # False: the token endpoint answers AADSTS90002 (tenant not found)
    app_installed: bool = True  # False: AADSTS700016 (application not found in the directory)
    consent: bool = True  # False: tokens carry no roles and Graph answers 403
    partner: bool = False  # the partner tenant: its tokens may also read GDAP relationships and contracts
    faults: tuple[Fault, ...] = ()

    def __post_init__(self) -> None:
        uuid.UUID(self.tenant_id)  # refuse what is not a GUID now, not at the first request
        if self.days < 0:
            raise ValueError("days must not be negative")


def _digest(seed: int, index: int) -> bytes:
    return hashlib.blake2b(f"sim-tenant\x1f{seed}\x1f{index}".encode(), digest_size=16).digest()


def _company(digest: bytes) -> str:
    prefix = _PREFIXES[digest[0] % len(_PREFIXES)]
    trade = _TRADES[digest[1] % len(_TRADES)]
    form = _FORMS[digest[2] % len(_FORMS)]
    return f"{prefix} {trade} {form}"


def generate_tenants(n: int, *, seed: int) -> list[SimTenant]:
    """`n` healthy tenants with deterministic GUIDs and unique, company-like names."""
    tenants: list[SimTenant] = []
    seen: dict[str, int] = {}
    for index in range(n):
        digest = _digest(seed, index)
        name = _company(digest)
        # Past a few hundred tenants names repeat; real MSPs tell them apart by a region or number.
        seen[name] = seen.get(name, 0) + 1
        if seen[name] > 1:
            name = f"{name} ({seen[name]})"
        tenants.append(SimTenant(tenant_id=str(uuid.UUID(bytes=digest, version=4)), name=name))
    return tenants
