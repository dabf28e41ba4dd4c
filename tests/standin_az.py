"""A stand-in for the Azure CLI on PATH: a small Python program answering `az account get-access-token` the
way the real one does (its JSON on standard output, its failure texts on standard error and exit 1).

azure-identity's AzureCliCredential finds `az` with `shutil.which`, runs
`az account get-access-token --output json --resource R [--tenant T]` and reads `accessToken` and
`expires_on` (else `expiresOn`); a failure whose text says `az login` means "not signed in".
Tests change the stand-in's state (signed in or not, one answer per tenant) through `StandInAz`.
"""

from __future__ import annotations

import json
import stat
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

SCRIPT = """#!{python}
import json, sys, time
from pathlib import Path

args = sys.argv[1:]
# CLOCK_MONOTONIC is the machine's: comparable with the simulator's records
with open({log!r}, "a", encoding="utf-8") as log:
    log.write(json.dumps({{"args": args, "started": time.monotonic()}}) + "\\n")
state = json.loads(Path({state!r}).read_text(encoding="utf-8"))
if args[:2] != ["account", "get-access-token"]:
    print(f"ERROR: 'az {{' '.join(args[:2])}}' is not known to this stand-in", file=sys.stderr)
    sys.exit(2)
if not state["signed_in"]:
    print("ERROR: Please run 'az login' to setup account.", file=sys.stderr)
    sys.exit(1)
tenant = args[args.index("--tenant") + 1] if "--tenant" in args else state["default_tenant"]
answer = state["answers"].get(tenant)
if answer is None:
    print(
        f"ERROR: AADSTS50020: User account '{{state['user']}}' from identity provider "
        f"'https://sts.windows.net/{{state['default_tenant']}}/' does not exist in tenant '{{tenant}}' and cannot "
        "access the application '04b07795-8ddb-461a-bbee-02f9e1bf7b46'(Microsoft Azure CLI) in that tenant. "
        "The account needs to be added as an external user in the tenant first.\\n"
        f"Interactive authentication is needed. Please run:\\naz login --tenant {{tenant}}",
        file=sys.stderr,
    )
    sys.exit(1)
print(json.dumps(answer, indent=2))
"""


@dataclass
class StandInAz:
    """The stand-in's directory (put it first on PATH), its state, and the argument lists it was run with."""

    directory: Path
    state_file: Path
    log_file: Path

    @classmethod
    def install(cls, directory: Path) -> StandInAz:
        directory.mkdir(parents=True, exist_ok=True)
        az = cls(directory, directory / "az-state.json", directory / "az-calls.jsonl")
        script = directory / "az"
        script.write_text(
            SCRIPT.format(python=sys.executable, log=str(az.log_file), state=str(az.state_file)), encoding="utf-8"
        )
        script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        az.sign_out()
        return az

    def write(self, **state: Any) -> None:
        self.state_file.write_text(json.dumps(state), encoding="utf-8")

    def sign_out(self) -> None:
        self.write(signed_in=False, default_tenant="", user="", answers={})

    def sign_in(self, user: str, default_tenant: str, tokens: dict[str, tuple[str, int]]) -> None:
        """Signed in as `user`; `tokens` maps each tenant az can serve to (access token, expires_on)."""
        answers = {tenant: self.answer(token, expires_on, tenant) for tenant, (token, expires_on) in tokens.items()}
        self.write(signed_in=True, default_tenant=default_tenant, user=user, answers=answers)

    @staticmethod
    def answer(token: str, expires_on: int, tenant: str) -> dict[str, Any]:
        """What `az account get-access-token --output json` prints (Azure CLI 2.54 and later)."""
        return {
            "accessToken": token,
            "expiresOn": datetime.fromtimestamp(expires_on).strftime("%Y-%m-%d %H:%M:%S.%f"),
            "expires_on": expires_on,
            "subscription": "11111111-2222-4333-8444-555555555555",
            "tenant": tenant,
            "tokenType": "Bearer",
        }

    @property
    def calls(self) -> list[list[str]]:
        """The argument lists `az` was run with, in order."""
        return [call["args"] for call in self._log()]

    def started(self, tenant_id: str) -> float:
        """When (`time.monotonic()`, the same clock as the simulator's records) `az` was first asked for a tenant."""
        return min(call["started"] for call in self._log() if call["args"][-1] == tenant_id)

    def _log(self) -> list[dict[str, Any]]:
        if not self.log_file.exists():
            return []
        return [json.loads(line) for line in self.log_file.read_text(encoding="utf-8").splitlines()]
