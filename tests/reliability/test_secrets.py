"""After the whole suite: no client secret, certificate password or access token in any log line, exception
text or database. Runs last (see conftest.py); it also drives runs of its own that provoke the paths where a
secret could slip out (refused secrets and certificates, Graph refusing a token, the Azure SDK's own logs at
-vv), so that it proves something when run alone."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from fetcher.simulator import Fault, TokenRefusal, generate_client_certificate, generate_tenants
from tests.reliability.harness import (
    CERTIFICATE_PASSWORD,
    SECRETS,
    WRONG_PASSWORD,
    Transcripts,
    leaks,
    rig,
)

pytestmark = pytest.mark.slow

SEED = 61


def provoke(tmp_path: Path, transcripts: Transcripts) -> None:
    """Runs whose every line could carry a secret or a token if the fetcher were careless."""
    certificate = generate_client_certificate(tmp_path / "cert", password=CERTIFICATE_PASSWORD)
    plain, refused, graph_401, cert_ok, cert_wrong = generate_tenants(5, seed=SEED)
    tenants = [
        plain,
        dataclasses.replace(refused, faults=(Fault.token_refusal(TokenRefusal.INVALID_SECRET),)),
        dataclasses.replace(graph_401, faults=(Fault.status(401),)),
        cert_ok,
        cert_wrong,
    ]
    with rig(
        tmp_path,
        f"sqlite+aiosqlite:///{tmp_path / 'secrets.db'}",
        tenants,
        transcripts,
        seed=SEED,
        controls_per_day=20,
        client_certificate_pem=certificate.certificate_pem,
        fetch={"history_days": 3},
    ) as r:
        r.extra_env.update(REL_CERT=CERTIFICATE_PASSWORD, REL_WRONG_CERT=WRONG_PASSWORD)
        pfx = str(certificate.password_pfx_file)
        certificate_auth = {"method": "certificate", "certificate_path": pfx}
        r.configure(
            tenant_auth={
                cert_ok.tenant_id: {**certificate_auth, "certificate_password": "env:REL_CERT"},
                cert_wrong.tenant_id: {**certificate_auth, "certificate_password": "env:REL_WRONG_CERT"},
            }
        )
        assert r.fetcher("config", "check").returncode == 0
        assert r.fetcher("config", "check", "--verbose", "--online").returncode == 1  # a wrong certificate password
        assert r.fetcher("tenants", "check", "--format", "json").returncode == 1
        assert r.fetcher("backfill").returncode == 1
        assert r.fetcher("-v", "run").returncode == 1  # -vv: the Azure SDK's HTTP logging too
        assert r.fetcher("get", f"{plain.tenant_id}_{r.sim.newest_day}").returncode == 0
        assert r.fetcher("status").returncode in (0, 1)


def test_no_secret_or_token_in_any_output_or_database(tmp_path: Path, transcripts: Transcripts) -> None:
    provoke(tmp_path, transcripts)

    found = [f"{' '.join(t.argv[2:])}: {leak}" for t in transcripts.entries for leak in leaks(t.stdout + t.stderr)]
    for database in sorted(transcripts.sqlite_files):
        transcripts.scan_database(f"sqlite+aiosqlite:///{database}")
    found += transcripts.database_leaks

    assert not found, f"{len(found)} leak(s), e.g. {found[:5]}"
    assert len(transcripts.entries) >= 5
    assert all(secret not in repr(transcripts.entries) for secret in SECRETS.values())


def test_the_scan_recognizes_secrets_and_the_simulators_tokens() -> None:
    """The scan above would see a leak: each secret, and a token exactly as the simulator issues them."""
    from fetcher.simulator import Simulator

    sim = Simulator(generate_tenants(1, seed=SEED))
    token = sim.issue_federated_token(sim.client_id, next(iter(sim.tenants)))

    assert len(leaks(f"Authorization: Bearer {token}")) == 1
    assert [len(leaks(f"x{secret}x")) for secret in SECRETS.values()] == [1, 1, 1]
    assert leaks("tenant 1234: Graph refused the token [redacted]") == []
