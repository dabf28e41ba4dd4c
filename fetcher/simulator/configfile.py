"""A ready `fetcher.toml` pointing at a running simulator, in the project's configuration format."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path


def toml_string(value: str) -> str:
    # A JSON string with ASCII escapes is also a valid TOML basic string.
    return json.dumps(value, ensure_ascii=True)


def render_config(
    *,
    database_url: str,
    graph_base_url: str,
    authority_host: str,
    ca_file: Path,
    client_id: str,
    client_secret_reference: str,
    tenants: Sequence[tuple[str, str]],
    extra: str = "",
    partner_tenant_id: str | None = None,
) -> str:
    """The configuration text; `tenants` are (tenant_id, name) pairs; `extra` is appended verbatim.

    With `partner_tenant_id`, the tenants are discovered there (`tenants_source = "partner"`, `[partner]`).
    """
    lines = ["# Written by the securescore-fetcher simulator for the simulator."]
    if partner_tenant_id is not None:
        lines += [
            "# The tenants are the partner's customers, discovered from its GDAP relationships at each run.",
            'tenants_source = "partner"',
            "",
        ]
    lines += [
        "[database]",
        f"url = {toml_string(database_url)}",
        "",
        "[graph]",
        f"base_url = {toml_string(graph_base_url)}",
        f"authority_host = {toml_string(authority_host)}",
        f"ca_bundle = {toml_string(str(ca_file.resolve()))}",
        "timeout_seconds = 30",
        "",
        "[fetch]",
        "concurrency = 16",
        "",
        "[auth]",
        'method = "client_secret"',
        f"client_id = {toml_string(client_id)}",
        f"client_secret = {toml_string(client_secret_reference)}",
    ]
    if partner_tenant_id is not None:
        lines += [
            "",
            "[partner]",
            f"tenant_id = {toml_string(partner_tenant_id)}",
            'source = "gdap"',
            "refresh_hours = 24",
        ]
    for tenant_id, name in tenants:
        lines += ["", "[[tenants]]", f"tenant_id = {toml_string(tenant_id)}", f"name = {toml_string(name)}"]
    text = "\n".join(lines) + "\n"
    return text + ("\n" + extra.rstrip("\n") + "\n" if extra else "")


def write_secret_file(path: Path, secret: str) -> str:
    """Keep the secret out of the config as the project prefers: a private file, named by `file:`."""
    path.write_text(secret + "\n", encoding="utf-8")
    path.chmod(0o600)
    return f"file:{path.resolve()}"
