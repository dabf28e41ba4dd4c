"""A person's sign-in against the simulator: `[auth] method = "azure_cli"` with a stand-in `az` on PATH, and
`method = "device_code"` with the simulator's device-code endpoints, each refusal in one line with its fix."""

from __future__ import annotations

import asyncio
import os
import pty
import re
import select
import signal
import ssl
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.identity import CredentialUnavailableError

from fetcher.auth import TokenProvider
from fetcher.config import DEFAULT_PUBLIC_CLIENT_ID, AuthConfig, DatabaseConfig
from fetcher.errors import AuthenticationError, PermissionDenied, UnsafeResponse
from fetcher.models import TenantRef
from fetcher.signin import signin_refusal
from fetcher.simulator import Fault, FaultKind, SimTenant, SimUser
from fetcher.simulator.devicecode import PollResult
from fetcher.simulator.tokens import decode
from fetcher.store import schema
from fetcher.store.engine import create_engine
from tests.dbutil import count
from tests.e2e import World, toml_value, world
from tests.graph_fixtures import Stack, small_simulator, stack
from tests.standin_az import StandInAz

CONTOSO = SimTenant("0b7c1e2a-1111-4222-8333-444455556666", "Contoso Ltd", days=30)
FABRIKAM = SimTenant("7e4f0c2b-2222-4333-8444-555566667777", "Fabrikam Inc", days=30)
NOT_CONSENTED = SimTenant("9a8b7c6d-3333-4444-8555-666677778888", "Northwind", days=30, consent=False)
ADMIN = "secadmin@contoso.example"
INTERN = "intern@contoso.example"  # signs in, but holds no role that reads Secure Score
USERS = (SimUser(ADMIN), SimUser(INTERN, security_reader=False))
JWT = re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.")
CODE = re.compile(r"enter the code (\w+)")


@pytest.fixture
def az(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> StandInAz:
    """The stand-in `az`, first on PATH, signed out."""
    stand_in = StandInAz.install(tmp_path / "bin")
    monkeypatch.setenv("PATH", f"{stand_in.directory}:/usr/bin:/bin")
    return stand_in


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A home directory of the test's own: azure-identity's persistent cache lives under ~/.IdentityService."""
    path = tmp_path / "home"
    path.mkdir()
    monkeypatch.setenv("HOME", str(path))
    return path


@pytest.fixture
def cli_world(tmp_path: Path, database_url: str) -> Iterator[World]:
    with world(tmp_path, database_url, [CONTOSO, FABRIKAM], users=USERS, seed=3, controls_per_day=20) as w:
        yield w


def sign_in_az(az: StandInAz, w: World, user: str = ADMIN, scopes: tuple[str, ...] | None = None) -> None:
    expires_on = int(time.time()) + 3600
    options = {"scopes": scopes} if scopes is not None else {}
    tokens = {
        t: (w.sim.issue_user_token(t, user, audience=w.running.origin, **options), expires_on) for t in w.sim.tenants
    }
    az.sign_in(user, CONTOSO.tenant_id, tokens)


def stored_days(database_url: str, tenant_id: str) -> int:
    async def counted() -> int:
        engine = create_engine(DatabaseConfig(url=database_url))
        try:
            return await count(engine, schema.secure_scores, tenant_id=tenant_id)
        finally:
            await engine.dispose()

    return asyncio.run(counted())


# ---------------------------------------------------------------------------------------------- azure_cli


def test_azure_cli_backfills_every_tenant_with_the_signed_in_user(cli_world: World, az: StandInAz) -> None:
    """The CLI's token for each configured tenant is used; az is asked exactly as azure-identity asks it."""
    w = cli_world
    w.write_config(fetch={"control_profiles": False})
    w.config.write_text(w.config.read_text().replace('method = "client_secret"', 'method = "azure_cli"'))
    sign_in_az(az, w)
    done = w.fetcher("backfill", "--no-alerts")
    assert done.returncode == 0, done.stderr
    assert stored_days(w.database_url, CONTOSO.tenant_id) == 30
    assert stored_days(w.database_url, FABRIKAM.tenant_id) == 30
    resource = w.running.origin
    assert sorted(az.calls) == sorted(
        ["account", "get-access-token", "--output", "json", "--resource", resource, "--tenant", t]
        for t in (CONTOSO.tenant_id, FABRIKAM.tenant_id)
    )
    assert not JWT.search(done.stderr + done.stdout)
    # One sign-in, one tenant at a time ([fetch] per_sign_in_concurrency = 1): the second starts after the first.
    first, second = sorted((CONTOSO.tenant_id, FABRIKAM.tenant_id), key=az.started)
    assert max(r.finished for r in w.sim.requests if r.tenant_id == first) <= az.started(second)


def test_azure_cli_is_usable_for_one_tenant_beside_an_app(cli_world: World, az: StandInAz) -> None:
    w = cli_world
    w.write_config(fetch={"control_profiles": False}, tenant_auth={FABRIKAM.tenant_id: {"method": "azure_cli"}})
    sign_in_az(az, w)
    done = w.fetcher("backfill", "--no-alerts")
    assert done.returncode == 0, done.stderr
    assert [call[-1] for call in az.calls] == [FABRIKAM.tenant_id]
    assert stored_days(w.database_url, FABRIKAM.tenant_id) == 30


def one_refusal(done: object, fragment: str) -> str:
    """The one line of stderr that carries `fragment`."""
    stderr = getattr(done, "stderr", "")
    lines = [line for line in stderr.splitlines() if fragment in line]
    assert lines, stderr
    return lines[0]


@pytest.fixture
def sqlite_world(tmp_path: Path) -> Iterator[World]:
    tenants = [CONTOSO, FABRIKAM, NOT_CONSENTED]
    with world(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'f.db'}", tenants, users=USERS, controls_per_day=20) as w:
        yield w


def azure_cli_config(w: World, tenants: list[str] | None = None) -> None:
    w.write_config(tenants=tenants or [CONTOSO.tenant_id], fetch={"control_profiles": False, "max_attempts": 1})
    w.config.write_text(w.config.read_text().replace('method = "client_secret"', 'method = "azure_cli"'))


@pytest.mark.parametrize("tenants", [[CONTOSO], [CONTOSO, FABRIKAM]], ids=["one", "two"])
def test_azure_cli_without_az_on_path_is_refused_before_anything_with_a_command_to_paste(
    sqlite_world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tenants: list[SimTenant]
) -> None:
    """As device_code with no terminal: exit 2, one line, no database created, nothing asked. It created the
    database, asked Entra ID nothing it could answer, exited 4, and said `az login --tenant {tenant}` for two."""
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    azure_cli_config(sqlite_world, [t.tenant_id for t in tenants])
    done = sqlite_world.fetcher("backfill", "--no-alerts")
    assert done.returncode == 2, done.stderr
    line = one_refusal(done, "not on PATH")
    assert "`az` is not on PATH: install it" in line
    login = f"`az login --tenant {CONTOSO.tenant_id}`" if len(tenants) == 1 else "`az login --tenant ID` with each"
    assert login in line
    assert "{tenant}" not in done.stderr
    assert (tmp_path / "f.db").exists() is False
    assert sqlite_world.sim.requests == []


@pytest.mark.usefixtures("az")
def test_azure_cli_signed_out_says_to_run_az_login(sqlite_world: World) -> None:
    azure_cli_config(sqlite_world)
    done = sqlite_world.fetcher("backfill", "--no-alerts")
    assert done.returncode == 4
    line = one_refusal(done, "not signed in")
    assert f"run `az login --tenant {CONTOSO.tenant_id}`" in line


def test_azure_cli_for_a_tenant_the_user_is_not_in_names_the_tenant(sqlite_world: World, az: StandInAz) -> None:
    azure_cli_config(sqlite_world)
    az.sign_in(ADMIN, FABRIKAM.tenant_id, {})
    done = sqlite_world.fetcher("backfill", "--no-alerts")
    assert done.returncode == 4
    line = one_refusal(done, "gave no token")
    assert "AADSTS50020" in line
    assert f"az login --tenant {CONTOSO.tenant_id}" in line


def test_a_user_without_a_security_role_is_refused_by_graph_in_one_line(sqlite_world: World, az: StandInAz) -> None:
    azure_cli_config(sqlite_world)
    sign_in_az(az, sqlite_world, user=INTERN)
    done = sqlite_world.fetcher("backfill", "--no-alerts")
    assert done.returncode == 4
    line = one_refusal(done, "Graph denied the signed-in user")
    assert "does not have valid roles" in line
    assert "needs the Security Reader role (or higher)" in line


def test_a_token_without_the_delegated_permission_is_refused_in_one_line(sqlite_world: World, az: StandInAz) -> None:
    azure_cli_config(sqlite_world)
    sign_in_az(az, sqlite_world, scopes=("User.Read", "Directory.AccessAsUser.All"))
    done = sqlite_world.fetcher("backfill", "--no-alerts")
    assert done.returncode == 4
    line = one_refusal(done, "Graph denied the signed-in user")
    assert "Missing scope permissions" in line
    assert 'use [auth] method = "device_code"' in line


# -------------------------------------------------------------------------------------------- device_code


def device_auth(**options: object) -> AuthConfig:
    return AuthConfig(method="device_code", client_id=DEFAULT_PUBLIC_CLIENT_ID, **options)  # type: ignore[arg-type]


class Person:
    """Reads the prompt as it is shown and does one thing on the sign-in page: approve, decline, expire, ..."""

    def __init__(self, stack_sim: object, *actions: str, username: str = ADMIN) -> None:
        self.sim = stack_sim
        self.actions = actions
        self.username = username
        self.prompts: list[str] = []

    def __call__(self, text: str) -> None:
        self.prompts.append(text)
        match = CODE.search(text)
        if match is None:
            return
        for action in self.actions:
            assert self.sim.device_flows.decide(match.group(1), action, self.username) is not None  # type: ignore[attr-defined]


@pytest.mark.usefixtures("home")
async def test_device_code_prompts_once_and_graph_accepts_the_users_token(tmp_path: Path) -> None:
    sim = small_simulator([CONTOSO], users=USERS, device_code_interval_seconds=0)
    person = Person(sim, "approve")
    async with stack(sim, tmp_path, prompt=person) as s:
        tenant = s.tenant(CONTOSO, device_auth())
        token = await s.tokens.token(tenant)
        assert len(await s.list_all(tenant, days=5)) == 5
        claims = decode(token).claims
        assert (claims["upn"], claims["scp"], claims["idtyp"]) == (ADMIN, "SecurityEvents.Read.All", "user")
        assert claims["appid"] == DEFAULT_PUBLIC_CLIENT_ID
        assert len(person.prompts) == 1
        assert f"{s.running.origin}/devicelogin" in person.prompts[0]
        assert CONTOSO.tenant_id in person.prompts[0]
        assert not JWT.search(person.prompts[0])


async def test_a_second_run_signs_in_from_the_persistent_cache(tmp_path: Path, home: Path) -> None:
    """A second command (a new provider and credential; only the files under ~ shared) asks nobody."""
    sim = small_simulator([CONTOSO], users=USERS, device_code_interval_seconds=0)
    auth = device_auth(token_cache="fetcher-test", allow_unencrypted_storage=True)
    first, second = Person(sim, "approve"), Person(sim, "approve")
    async with stack(sim, tmp_path, prompt=first) as s:
        tenant = s.tenant(CONTOSO, auth)
        await s.tokens.token(tenant)
        await s.tokens.close()
        assert (home / ".IdentityService" / "fetcher-test.accounts.json").exists()
        assert oct((home / ".IdentityService" / "fetcher-test.accounts.json").stat().st_mode & 0o777) == "0o600"
        sim.clear_requests()
        again = TokenProvider(s.session, s.graph, lambda _t: auth, prompt=second)
        try:
            token = await again.token(tenant)
        finally:
            await again.close()
    assert second.prompts == []
    assert [r.endpoint for r in sim.requests if r.endpoint != "openid"] == []
    assert decode(token).claims["upn"] == ADMIN
    assert len(first.prompts) == 1


async def test_a_cache_past_its_access_token_refreshes_without_a_prompt(tmp_path: Path, home: Path) -> None:
    """MSAL treats a token expiring within 5 minutes as stale: the refresh token gets a new one silently."""
    sim = small_simulator([CONTOSO], users=USERS, device_code_interval_seconds=0, token_lifetime_seconds=120)
    auth = device_auth(token_cache="fetcher-test", allow_unencrypted_storage=True)
    second = Person(sim, "approve")
    async with stack(sim, tmp_path, prompt=Person(sim, "approve")) as s:
        tenant = s.tenant(CONTOSO, auth)
        await s.tokens.token(tenant)
        await s.tokens.close()
        sim.clear_requests()
        again = TokenProvider(s.session, s.graph, lambda _t: auth, prompt=second)
        try:
            await again.token(tenant)
        finally:
            await again.close()
    assert second.prompts == []
    assert [(r.endpoint, r.status) for r in sim.requests if r.endpoint != "openid"] == [("token", 200)]
    cache = home / ".IdentityService" / "fetcher-test.nocae"  # azure-identity names it so (no CAE)
    assert oct(cache.stat().st_mode & 0o777) == "0o600"


async def test_a_session_revoked_during_the_run_asks_again_instead_of_failing(tmp_path: Path, home: Path) -> None:
    """The refresh token stops working mid-run (an admin revoked the sessions): the person is asked once more."""
    sim = small_simulator([CONTOSO], users=USERS, device_code_interval_seconds=0, token_lifetime_seconds=120)
    auth = device_auth(token_cache="fetcher-test", allow_unencrypted_storage=True)
    person = Person(sim, "approve")
    async with stack(sim, tmp_path, prompt=person) as s:
        tenant = s.tenant(CONTOSO, auth)
        await s.tokens.token(tenant)
        await s.tokens.close()
        again = TokenProvider(s.session, s.graph, lambda _t: auth, prompt=person)
        try:
            await again.token(tenant)  # silently, from the cache
            assert len(person.prompts) == 1
            sim.device_flows.revoke_refresh_tokens()
            token = await again.token(tenant)  # MSAL finds the 120 s token stale and its refresh token refused
        finally:
            await again.close()
    assert len(person.prompts) == 2
    assert decode(token).claims["upn"] == ADMIN
    assert (home / ".IdentityService" / "fetcher-test.accounts.json").exists()


@pytest.mark.usefixtures("home")
async def test_a_401_from_graph_gets_one_fresh_delegated_token_and_one_retry(tmp_path: Path) -> None:
    """As the app-only path does: MSAL's cached token is not sent again, its refresh token gets a new one."""
    sim = small_simulator([CONTOSO], users=USERS, device_code_interval_seconds=0)
    person = Person(sim, "approve")
    async with stack(sim, tmp_path, prompt=person) as s:
        tenant = s.tenant(CONTOSO, device_auth())
        await s.tokens.token(tenant)
        sim.clear_requests()
        sim.add_fault(CONTOSO.tenant_id, Fault.status(401, times=1))
        assert len(await s.list_all(tenant, days=5)) == 5
        sent = [r for r in sim.requests if r.endpoint != "openid"]
    assert [(r.endpoint, r.status) for r in sent] == [("list", 401), ("token", 200), ("list", 200)]
    assert len(person.prompts) == 1


@pytest.mark.usefixtures("home")
async def test_a_401_that_a_fresh_delegated_token_does_not_cure_fails_in_one_line(tmp_path: Path) -> None:
    sim = small_simulator([CONTOSO], users=USERS, device_code_interval_seconds=0)
    person = Person(sim, "approve")
    async with stack(sim, tmp_path, prompt=person) as s:
        tenant = s.tenant(CONTOSO, device_auth())
        await s.tokens.token(tenant)
        sim.clear_requests()
        sim.add_fault(CONTOSO.tenant_id, Fault.status(401))
        with pytest.raises(AuthenticationError) as caught:
            await s.list_all(tenant, days=5)
        sent = [r for r in sim.requests if r.endpoint != "openid"]
    assert [(r.endpoint, r.status) for r in sent] == [("list", 401), ("token", 200), ("list", 401)]
    assert caught.value.status == 401
    assert str(caught.value) == (
        f"tenant {CONTOSO.tenant_id} ({CONTOSO.name}): Graph refused the signed-in user's freshly issued access "
        "token (401: InvalidAuthenticationToken: Access token validation failure.); the session may have been "
        "revoked or blocked by a Conditional Access policy: sign in again and try again"
    )
    assert len(person.prompts) == 1


@pytest.mark.usefixtures("home")
async def test_an_unencryptable_cache_names_allow_unencrypted_storage(tmp_path: Path) -> None:
    """On this headless Linux (no libsecret) azure-identity cannot encrypt: one line says what to set."""
    sim = small_simulator([CONTOSO], users=USERS, device_code_interval_seconds=0)
    person = Person(sim, "approve")
    async with stack(sim, tmp_path, prompt=person) as s:
        with pytest.raises(AuthenticationError) as refused:
            await s.tokens.token(s.tenant(CONTOSO, device_auth(token_cache="fetcher-test")))
    assert "set [auth] allow_unencrypted_storage = true" in str(refused.value)
    assert "\n" not in str(refused.value)
    assert person.prompts == []


@pytest.mark.parametrize(
    ("actions", "fragment"),
    [
        (("expire",), "the device code expired before the sign-in was completed: run the command again"),
        (("decline",), "the sign-in was declined at the sign-in page: run the command again and approve it"),
    ],
)
@pytest.mark.usefixtures("home")
async def test_an_unfinished_sign_in_is_one_line_with_the_fix(
    tmp_path: Path, actions: tuple[str, ...], fragment: str
) -> None:
    sim = small_simulator([CONTOSO], users=USERS, device_code_interval_seconds=0)
    async with stack(sim, tmp_path, prompt=Person(sim, *actions)) as s:
        with pytest.raises(AuthenticationError) as refused:
            await s.tokens.token(s.tenant(CONTOSO, device_auth()))
    message = str(refused.value)
    assert message.startswith(f"tenant {CONTOSO.tenant_id} (Contoso Ltd): {fragment}")
    assert "\n" not in message


@pytest.mark.usefixtures("home")
async def test_an_answer_from_entra_above_its_cap_is_refused(tmp_path: Path) -> None:
    """The synchronous credential's answers are capped as the asyncio ones are (1 MiB), before MSAL reads them."""
    sim = small_simulator([CONTOSO], users=USERS, device_code_interval_seconds=0)
    flood = b'{"padding": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    sim.add_fault(CONTOSO.tenant_id, Fault(kind=FaultKind.STATUS, endpoint="token", status_code=200, body=flood))
    async with stack(sim, tmp_path, prompt=Person(sim, "approve")) as s:
        with pytest.raises(UnsafeResponse) as refused:
            await s.tokens.token(s.tenant(CONTOSO, device_auth()))
    assert str(refused.value) == (
        f"tenant {CONTOSO.tenant_id} (Contoso Ltd): Entra ID's answer (Content-Length {len(flood)}) exceeds the cap "
        "of 1048576 bytes; refused"
    )


@pytest.mark.usefixtures("home")
async def test_a_code_that_runs_out_of_time_expires(tmp_path: Path) -> None:
    """Nobody signs in and the code's lifetime (0 s here) passes: Entra ID answers expired_token."""
    sim = small_simulator([CONTOSO], users=USERS, device_code_interval_seconds=0, device_code_lifetime_seconds=0)
    async with stack(sim, tmp_path, prompt=Person(sim)) as s:
        with pytest.raises(AuthenticationError, match="the device code expired"):
            await s.tokens.token(s.tenant(CONTOSO, device_auth()))


@pytest.mark.usefixtures("home")
async def test_slow_down_is_obeyed_and_the_sign_in_still_completes(tmp_path: Path) -> None:
    """MSAL adds 5 s to its polling interval after slow_down (so this test takes about 5 s)."""
    sim = small_simulator([CONTOSO], users=USERS, device_code_interval_seconds=0)
    async with stack(sim, tmp_path, prompt=Person(sim, "slow_down", "approve")) as s:
        await s.tokens.token(s.tenant(CONTOSO, device_auth()))
        polls = s.requests("token")
    assert [r.status for r in polls] == [400, 200]


@pytest.mark.usefixtures("home")
async def test_a_user_without_the_role_is_refused_with_graphs_403(tmp_path: Path) -> None:
    sim = small_simulator([CONTOSO], users=USERS, device_code_interval_seconds=0)
    async with stack(sim, tmp_path, prompt=Person(sim, "approve", username=INTERN)) as s:
        with pytest.raises(PermissionDenied) as refused:
            await s.list_all(s.tenant(CONTOSO, device_auth()), days=1)
    assert "needs the Security Reader role (or higher) in tenant" in str(refused.value)


@pytest.mark.usefixtures("home")
async def test_a_tenant_without_consent_refuses_the_permission(tmp_path: Path) -> None:
    sim = small_simulator([NOT_CONSENTED], users=USERS, device_code_interval_seconds=0)
    async with stack(sim, tmp_path, prompt=Person(sim, "approve")) as s:
        with pytest.raises(AuthenticationError, match="AADSTS65001"):
            await s.tokens.token(s.tenant(NOT_CONSENTED, device_auth()))


@pytest.mark.usefixtures("home")
async def test_cancelling_a_waiting_sign_in_ends_its_thread(tmp_path: Path) -> None:
    """Ctrl-C cancels the waiting task; the worker thread's next poll is refused, so the thread ends too."""
    sim = small_simulator([CONTOSO], users=USERS, device_code_interval_seconds=1)
    shown = asyncio.Event()
    loop = asyncio.get_running_loop()
    prompts: list[str] = []

    def prompt(text: str) -> None:
        prompts.append(text)
        loop.call_soon_threadsafe(shown.set)

    async with stack(sim, tmp_path, prompt=prompt) as s:
        waiting = asyncio.create_task(s.tokens.token(s.tenant(CONTOSO, device_auth())))
        await shown.wait()
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        await asyncio.wait_for(_threads_done(s), timeout=30)
    assert prompts[-1].endswith("sign-in cancelled; run the command again to sign in")


async def _threads_done(s: Stack) -> None:
    """Until no poll of the cancelled flow is in flight any more and the flow is no longer polled."""
    polls = -1
    while True:
        flows = s.sim.device_flows.flows
        now = sum(f.polls for f in flows)
        if now == polls:
            return
        polls = now
        await asyncio.sleep(2.5)  # longer than the polling interval: a live thread would have polled again


def test_the_poll_results_follow_the_person() -> None:
    sim = small_simulator([CONTOSO], users=USERS)
    flows = sim.device_flows
    flow = flows.start(CONTOSO.tenant_id, DEFAULT_PUBLIC_CLIENT_ID, ("https://h/SecurityEvents.Read.All",))
    assert flows.poll(flow.device_code, DEFAULT_PUBLIC_CLIENT_ID, time.time())[0] is PollResult.PENDING
    assert flows.poll("nonsense", DEFAULT_PUBLIC_CLIENT_ID, time.time())[0] is PollResult.BAD_CODE
    flows.decide(flow.user_code.lower(), "slow_down")
    assert flows.poll(flow.device_code, DEFAULT_PUBLIC_CLIENT_ID, time.time())[0] is PollResult.SLOW_DOWN
    flows.decide(flow.user_code, "approve", ADMIN)
    assert flows.poll(flow.device_code, DEFAULT_PUBLIC_CLIENT_ID, time.time())[0] is PollResult.GRANTED
    assert flows.poll(flow.device_code, DEFAULT_PUBLIC_CLIENT_ID, time.time())[0] is PollResult.BAD_CODE
    late = flows.start(CONTOSO.tenant_id, DEFAULT_PUBLIC_CLIENT_ID, ())
    assert flows.poll(late.device_code, DEFAULT_PUBLIC_CLIENT_ID, late.expires_at)[0] is PollResult.EXPIRED


# ------------------------------------------------------------------------------------------ the command line

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\r")


class Terminal:
    """`fetcher` run as a person runs it: standard input and error on a pseudo-terminal (stdout piped)."""

    def __init__(self, w: World, *args: str) -> None:
        self.master, slave = pty.openpty()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "fetcher", "--config", str(w.config), *args],
            stdin=slave,
            stdout=subprocess.PIPE,
            stderr=slave,
            env=w.env(),
            text=True,
            start_new_session=True,
        )
        os.close(slave)
        self.seen = ""

    def read_until(self, pattern: re.Pattern[str], timeout: float = 60) -> re.Match[str]:
        """What the terminal shows, until `pattern` appears (or the process ends: then fail)."""
        deadline = time.monotonic() + timeout
        while (match := pattern.search(self.seen)) is None:
            assert time.monotonic() < deadline, self.seen
            ready, _, _ = select.select([self.master], [], [], 0.5)
            if ready and not self._read():
                raise AssertionError(f"the command ended before {pattern.pattern!r}: {self.seen}")
        return match

    def finish(self, timeout: float = 120) -> int:
        """Wait for the command, reading the terminal meanwhile (a full terminal would block it); its exit code."""
        deadline = time.monotonic() + timeout
        while self.process.poll() is None:
            assert time.monotonic() < deadline, self.seen
            if select.select([self.master], [], [], 0.2)[0]:
                self._read()
        while select.select([self.master], [], [], 0.1)[0] and self._read():
            pass
        os.close(self.master)
        assert self.process.stdout is not None
        self.process.stdout.close()
        return self.process.returncode

    def _read(self) -> bool:
        try:
            data = os.read(self.master, 65536)
        except OSError:  # EIO: the other side is closed
            return False
        self.seen += ANSI.sub("", data.decode(errors="replace"))
        return bool(data)


def sign_in_page(w: World, user_code: str, action: str = "approve", username: str = ADMIN) -> str:
    """A person on the simulator's sign-in page, over HTTPS."""
    context = ssl.create_default_context(cafile=str(w.running.ca_file))
    form = urllib.parse.urlencode({"user_code": user_code, "action": action, "username": username}).encode()
    with urllib.request.urlopen(f"{w.running.origin}/devicelogin", data=form, context=context, timeout=10) as page:
        return str(page.read().decode())


def device_code_config(w: World, **auth: object) -> None:
    w.write_config(tenants=[CONTOSO.tenant_id], fetch={"control_profiles": False})
    text = w.config.read_text().replace('method = "client_secret"', 'method = "device_code"')
    extra = "".join(f"{key} = {toml_value(value)}\n" for key, value in auth.items())
    w.config.write_text(text.replace('method = "device_code"\n', f'method = "device_code"\n{extra}'))


@pytest.mark.usefixtures("home")
def test_backfill_with_device_code_prompts_then_a_second_command_does_not(cli_world: World) -> None:
    """The prompt on the terminal, the sign-in completed on the sign-in page, the days stored; then `run`
    signs in from the token cache, without a prompt and without a device-code request."""
    w = cli_world
    device_code_config(w, token_cache="fetcher", allow_unencrypted_storage=True)
    terminal = Terminal(w, "backfill", "--no-alerts")
    prompt = terminal.read_until(re.compile(r"open (\S+/devicelogin) and enter the code (\w+)"))
    assert prompt.group(1) == f"{w.running.origin}/devicelogin"
    assert "Signed in as" in sign_in_page(w, prompt.group(2))
    assert terminal.finish() == 0, terminal.seen
    assert stored_days(w.database_url, CONTOSO.tenant_id) == 30
    assert not JWT.search(terminal.seen)
    w.sim.clear_requests()
    again = Terminal(w, "run", "--no-alerts")
    assert again.finish() == 0, again.seen
    assert "enter the code" not in again.seen
    assert [r for r in w.sim.requests if r.endpoint in ("devicecode", "token")] == []


@pytest.mark.usefixtures("home")
def test_the_most_verbose_logs_show_no_token_and_no_device_code(sqlite_world: World) -> None:
    """With -vv the Azure SDK and MSAL log their exchanges: tokens masked, the device code kept out."""
    w = sqlite_world
    device_code_config(w, token_cache="fetcher", allow_unencrypted_storage=True)
    terminal = Terminal(w, "-vv", "backfill", "--no-alerts")
    user_code = terminal.read_until(re.compile(r"enter the code (\w+)")).group(1)
    flow = w.sim.device_flows.find(user_code)
    assert flow is not None
    sign_in_page(w, user_code)
    assert terminal.finish() == 0, terminal.seen
    assert "DeviceCodeCredential.get_token succeeded" in terminal.seen  # the SDK's logs are shown
    assert not JWT.search(terminal.seen)
    assert flow.device_code not in terminal.seen


def test_device_code_without_a_terminal_refuses_at_once(sqlite_world: World) -> None:
    """Under cron (no terminal) nobody can answer the prompt: refused before Entra ID is asked anything."""
    device_code_config(sqlite_world)
    commands = [["run"], ["backfill"], ["get", f"{CONTOSO.tenant_id}_2026-01-01"], ["tenants", "check"]]
    for command in commands:
        done = sqlite_world.fetcher(*command, *(["--no-alerts"] if command[0] in ("run", "backfill") else []))
        assert done.returncode == 2, done.stderr
        line = one_refusal(done, "needs a person at a terminal")
        assert f"`fetcher {' '.join(command[:2]) if command[0] == 'tenants' else command[0]}` has none" in line
        assert "client_secret, certificate, workload_identity, managed_identity" in line
    assert sqlite_world.sim.requests == []


def test_tenants_check_tells_a_signed_in_user_without_the_role_what_to_do(sqlite_world: World, az: StandInAz) -> None:
    azure_cli_config(sqlite_world)
    sign_in_az(az, sqlite_world, user=INTERN)
    done = sqlite_world.fetcher("tenants", "check")
    assert done.returncode == 1
    (line,) = [line for line in done.stdout.splitlines() if CONTOSO.tenant_id in line]
    assert "permission missing" in line
    assert "the user needs the Security Reader role (or higher) in tenant" in line


@pytest.mark.usefixtures("home")
def test_ctrl_c_at_the_prompt_cancels_the_sign_in(sqlite_world: World) -> None:
    device_code_config(sqlite_world)
    terminal = Terminal(sqlite_world, "backfill", "--no-alerts")
    terminal.read_until(re.compile(r"enter the code (\w+)"))
    terminal.process.send_signal(signal.SIGINT)
    assert terminal.finish(timeout=60) == 130
    assert "sign-in cancelled; run the command again to sign in" in terminal.seen


@pytest.mark.usefixtures("home")
def test_declining_on_the_sign_in_page_fails_the_tenant_in_one_line(sqlite_world: World) -> None:
    device_code_config(sqlite_world)
    terminal = Terminal(sqlite_world, "backfill", "--no-alerts")
    code = terminal.read_until(re.compile(r"enter the code (\w+)")).group(1)
    assert "declined" in sign_in_page(sqlite_world, code, action="decline")
    assert terminal.finish() == 4  # its only tenant failed
    assert "the sign-in was declined at the sign-in page: run the command again and approve it" in terminal.seen


@pytest.mark.usefixtures("home")
async def test_one_sign_in_serves_every_tenant_the_user_belongs_to(tmp_path: Path) -> None:
    """With a token cache, the refresh token of the first tenant's sign-in gets the second tenant's token."""
    sim = small_simulator([CONTOSO, FABRIKAM], users=USERS, device_code_interval_seconds=0)
    person = Person(sim, "approve")
    auth = device_auth(token_cache="fetcher-test", allow_unencrypted_storage=True)
    async with stack(sim, tmp_path, prompt=person) as s:
        first = await s.tokens.token(s.tenant(CONTOSO, auth))
        second = await s.tokens.token(s.tenant(FABRIKAM, auth))
        assert len(await s.list_all(s.tenant(FABRIKAM, auth), days=2)) == 2
    assert len(person.prompts) == 1
    assert (decode(first).claims["tid"], decode(second).claims["tid"]) == (CONTOSO.tenant_id, FABRIKAM.tenant_id)
    assert decode(second).claims["upn"] == ADMIN


@pytest.mark.usefixtures("home")
async def test_a_tenant_the_user_is_not_in_asks_again(tmp_path: Path) -> None:
    only_contoso = SimUser("consultant@contoso.example", tenants=frozenset({CONTOSO.tenant_id}))
    sim = small_simulator([CONTOSO, FABRIKAM], users=(only_contoso, SimUser(ADMIN)), device_code_interval_seconds=0)
    first, second = Person(sim, "approve", username=only_contoso.username), Person(sim, "approve")
    prompts = [first, second]

    def prompt(text: str) -> None:
        prompts[0](text)
        prompts.pop(0)

    auth = device_auth(token_cache="fetcher-test", allow_unencrypted_storage=True)
    async with stack(sim, tmp_path, prompt=prompt) as s:
        await s.tokens.token(s.tenant(CONTOSO, auth))
        token = await s.tokens.token(s.tenant(FABRIKAM, auth))
    assert (len(first.prompts), len(second.prompts)) == (1, 1)
    assert decode(token).claims["upn"] == ADMIN


@pytest.mark.parametrize(
    ("error", "fix"),
    [
        (CredentialUnavailableError("Azure CLI not found on path"), "`az` is not on PATH: install it"),
        (
            CredentialUnavailableError("Please run 'az login' to set up an account"),
            f"the Azure CLI is not signed in: run `az login --tenant {CONTOSO.tenant_id}`",
        ),
        (CredentialUnavailableError("Timed out waiting for Azure CLI"), "did not answer within 30 s"),
        (
            CredentialUnavailableError(
                "This credential doesn't support claims challenges. To authenticate with the required claims, please "
                "run the following command (requires Azure CLI version 2.76.0 or later): az login --claims-challenge "
                "eyJhY2Nlc3NfdG9rZW4iOnt9fQ== --tenant x --scope https://graph.microsoft.com/.default"
            ),
            "run `az login --claims-challenge eyJhY2Nlc3NfdG9rZW4iOnt9fQ== --tenant "
            f"{CONTOSO.tenant_id}` (Azure CLI 2.76 or later)",
        ),
    ],
)
def test_each_azure_cli_failure_is_one_line_with_its_fix(error: Exception, fix: str) -> None:
    refusal = signin_refusal(error, TenantRef(CONTOSO.tenant_id, CONTOSO.name), AuthConfig(method="azure_cli"))
    assert refusal is not None
    assert fix in str(refusal)
    assert "\n" not in str(refusal)
