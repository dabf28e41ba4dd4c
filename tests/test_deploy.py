"""The deployment files in deploy/ and the Containerfile stay in step with the CLI and the configuration:
every command line parses with the real click commands, every environment name is one the fetcher reads,
every `file:` reference points into a mounted Secret's keys, and the configuration they carry loads."""

from __future__ import annotations

import configparser
import re
import shlex
import tomllib
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from fetcher.cli import main
from fetcher.config import ENV_CONFIG, Purpose, load_config
from fetcher.config.model import FetchConfig
from fetcher.plan import INDEX_ENV, SHARD_ENV, shard_from

ROOT = Path(__file__).resolve().parent.parent
KUBERNETES = ROOT / "deploy" / "kubernetes" / "fetcher.yaml"
SYSTEMD = ROOT / "deploy" / "systemd"
CONTAINERFILE = ROOT / "Containerfile"
ENVIRONMENT = {ENV_CONFIG, SHARD_ENV}  # what the deployments may set; JOB_COMPLETION_INDEX is Kubernetes' own


def parse_command(argv: list[str]) -> tuple[str, ...]:
    """`argv` (starting with `fetcher`) parsed by the real CLI without running it; returns the command path.

    Raises click.UsageError for an unknown command or option."""
    assert argv[0].rsplit("/", 1)[-1] == "fetcher", argv
    group: click.Command = main
    names: list[str] = []
    rest = argv[1:]
    while True:
        ctx = group.make_context("fetcher", list(rest))
        if not isinstance(group, click.Group):
            return tuple(names)
        with warnings.catch_warnings():  # click 8.2 deprecates protected_args; 9.0 will put them in args
            warnings.simplefilter("ignore", DeprecationWarning)
            rest = [*ctx.protected_args, *ctx.args]
        name, command, rest = group.resolve_command(ctx, rest)
        assert command is not None
        assert name is not None
        names.append(name)
        group = command


def documents() -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(KUBERNETES.read_text(encoding="utf-8")) if doc]


def kind(name: str, kind_: str) -> dict[str, Any]:
    [found] = [d for d in documents() if d["kind"] == kind_ and d["metadata"]["name"] == name]
    return found


def pod_specs() -> Iterator[tuple[str, dict[str, Any]]]:
    for doc in documents():
        if doc["kind"] == "CronJob":
            yield doc["metadata"]["name"], doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        elif doc["kind"] == "Job":
            yield doc["metadata"]["name"], doc["spec"]["template"]["spec"]


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=True, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # systemd keys are case-sensitive
    parser.read(SYSTEMD / name, encoding="utf-8")
    return parser


def environment(service: configparser.ConfigParser) -> dict[str, str]:
    return dict(item.split("=", 1) for item in shlex.split(service["Service"]["Environment"]))


# ------------------------------------------------------------------------------------------ Kubernetes


def test_every_kubernetes_command_line_is_a_real_fetcher_command() -> None:
    commands = {
        name: parse_command(c["command"] + c.get("args", [])) for name, spec in pod_specs() for c in spec["containers"]
    }

    assert commands == {"fetcher-shards": ("run",), "fetcher-alerts": ("alerts",), "fetcher-migrate": ("migrate",)}


def test_the_shards_are_one_indexed_job_of_every_shard_at_once_that_never_overlaps_the_next_night() -> None:
    cron = kind("fetcher-shards", "CronJob")
    job = cron["spec"]["jobTemplate"]["spec"]
    shards = tomllib.loads(kind("fetcher-config", "ConfigMap")["data"]["fetcher.toml"])["fetch"]["shards"]

    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    assert job["completionMode"] == "Indexed"
    assert job["completions"] == job["parallelism"] == shards > 1
    assert job["template"]["spec"]["restartPolicy"] == "Never"  # required by podFailurePolicy
    # Each pod's JOB_COMPLETION_INDEX, with the ConfigMap's [fetch] shards, names one shard; together, all.
    slices = {shard_from(None, {INDEX_ENV: str(index)}, shards) for index in range(job["completions"])}
    assert {str(s) for s in slices} == {f"{k}/{shards}" for k in range(1, shards + 1)}


def test_the_job_fails_at_once_only_on_a_configuration_error_never_after_entra_id_or_graph_was_asked() -> None:
    """A first night's discovery outage (no customer list yet) exited 2 and was never retried."""
    from fetcher.errors import ConfigError, NoCustomerList

    rules = kind("fetcher-shards", "CronJob")["spec"]["jobTemplate"]["spec"]["podFailurePolicy"]["rules"]
    fail_job = {code for rule in rules if rule["action"] == "FailJob" for code in rule["onExitCodes"]["values"]}

    assert fail_job == {ConfigError.exit_code}
    assert NoCustomerList.exit_code not in fail_job


def test_alerts_run_in_their_own_job_after_the_shards() -> None:
    shards, alerts = kind("fetcher-shards", "CronJob"), kind("fetcher-alerts", "CronJob")

    assert alerts["spec"]["concurrencyPolicy"] == "Forbid"
    assert _hour(alerts["spec"]["schedule"]) > _hour(shards["spec"]["schedule"])


def _hour(schedule: str) -> int:
    return int(schedule.split()[1])


def test_pods_run_as_non_root_with_requests_and_only_names_the_fetcher_reads() -> None:
    for name, spec in pod_specs():
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        for container in spec["containers"]:
            assert {e["name"] for e in container.get("env", [])} <= ENVIRONMENT, name
            assert {"cpu", "memory"} <= set(container["resources"]["requests"]), name
            assert "memory" in container["resources"]["limits"], name


def test_secrets_are_mounted_files_and_the_configuration_refers_to_their_keys(tmp_path: Path) -> None:
    """The ConfigMap's fetcher.toml loads (every secret resolved) once the Secret's keys are where its
    volumes mount them."""
    secret = kind("fetcher-secrets", "Secret")
    config_map = kind("fetcher-config", "ConfigMap")
    for name, spec in pod_specs():
        volumes = {v["name"]: v for v in spec["volumes"]}
        [container] = spec["containers"]
        mounts = {m["mountPath"]: volumes[m["name"]] for m in container["volumeMounts"]}
        config_path = next(e["value"] for e in container["env"] if e["name"] == ENV_CONFIG)
        config_dir, config_file = config_path.rsplit("/", 1)
        assert mounts[config_dir]["configMap"]["name"] == "fetcher-config", name
        assert config_file in config_map["data"]
        text = config_map["data"][config_file]
        references = set(re.findall(r'"file:([^"]+)"', text))
        for path in references:
            directory, key = path.rsplit("/", 1)
            assert mounts[directory]["secret"]["secretName"] == "fetcher-secrets", (name, path)
            assert key in secret["stringData"], (name, path)

    root = tmp_path / "root"
    for path in ("etc/fetcher", "run/secrets/fetcher"):
        (root / path).mkdir(parents=True)
    for key, value in config_map["data"].items():
        rooted = value.replace('"file:/', f'"file:{root}/').replace('"/etc/', f'"{root}/etc/')
        (root / "etc/fetcher" / key).write_text(rooted, encoding="utf-8")
    for key in secret["stringData"]:
        value = "postgresql+asyncpg://fetcher@db/securescores" if key == "database-url" else "https://x.example/h"
        (root / "run/secrets/fetcher" / key).write_text(value, encoding="utf-8")

    config = load_config(root / "etc/fetcher/fetcher.toml", purpose=Purpose.FETCH)

    assert config.fetch.shards == kind("fetcher-shards", "CronJob")["spec"]["jobTemplate"]["spec"]["completions"]
    assert config.database.url == "postgresql+asyncpg://fetcher@db/securescores"
    assert config.tenants
    assert config.alerts.rules


# --------------------------------------------------------------------------------------------- systemd


@pytest.mark.parametrize("name", ["fetcher.service", "fetcher@.service", "fetcher-alerts.service"])
def test_every_systemd_command_line_is_a_real_fetcher_command(name: str) -> None:
    service = unit(name)["Service"]
    argv = shlex.split(service["ExecStart"])

    expected = ("alerts",) if "alerts" in name else ("run",)
    assert parse_command(argv) == expected
    assert service["Type"] == "oneshot"
    assert set(environment(unit(name))) <= ENVIRONMENT


def test_the_documented_sqlite_database_of_the_one_host_unit_is_in_its_state_directory(tmp_path: Path) -> None:
    """docs/deploy.md gave no url, and the default (relative) one follows the configuration's folder: /etc/fetcher,
    read-only under ProtectSystem=strict, so every night exited 3. Its example must land in StateDirectory."""
    service = unit("fetcher.service")["Service"]
    docs = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8").split("## systemd", 1)[1]
    [example] = re.findall(r"```toml\n(.*?)```", docs, re.S)
    config = Path(environment(unit("fetcher.service"))[ENV_CONFIG])
    (tmp_path / "fetcher.toml").write_text(example, encoding="utf-8")  # a relative url would resolve to tmp_path

    url = load_config(tmp_path / "fetcher.toml", {}, purpose=Purpose.DATABASE).database.url

    database = Path(url.removeprefix("sqlite+aiosqlite:///"))
    assert database.parent == Path("/var/lib") / service["StateDirectory"] == Path(service["WorkingDirectory"])
    assert not database.is_relative_to(config.parent)


@pytest.mark.parametrize(
    ("timer", "service"),
    [
        ("fetcher.timer", "fetcher.service"),
        ("fetcher@.timer", "fetcher@%i.service"),
        ("fetcher-alerts.timer", "fetcher-alerts.service"),
    ],
)
def test_timers_are_persistent_and_spread_their_start(timer: str, service: str) -> None:
    section = unit(timer)["Timer"]

    assert section["Persistent"] == "true"
    assert section["RandomizedDelaySec"]
    assert section["Unit"] == service
    assert (SYSTEMD / service.replace("%i", "")).exists()
    assert unit(timer)["Install"]["WantedBy"] == "timers.target"


def test_the_templated_unit_takes_its_shard_from_the_instance_name() -> None:
    """`fetcher@2-4.service`: %I unescapes systemd-escape's `-` back to `/`, so FETCHER_SHARD=2/4."""
    value = environment(unit("fetcher@.service"))[SHARD_ENV]
    instance = "2-4"  # systemd-escape 2/4

    unescaped = value.replace("%I", instance.replace("-", "/"))

    assert str(shard_from(None, {SHARD_ENV: unescaped}, 1)) == "2/4"


def test_the_alerts_timer_starts_after_the_shards_timer() -> None:
    shards = unit("fetcher@.timer")["Timer"]["OnCalendar"]
    alerts = unit("fetcher-alerts.timer")["Timer"]["OnCalendar"]

    assert _calendar_hour(alerts) > _calendar_hour(shards)


def _calendar_hour(calendar: str) -> int:
    return int(calendar.split()[1].split(":", maxsplit=1)[0])


# --------------------------------------------------------------------------------------------- image


def containerfile() -> list[tuple[str, str]]:
    text = CONTAINERFILE.read_text(encoding="utf-8").replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def test_the_image_is_slim_python_installed_from_this_repository_and_runs_as_non_root() -> None:
    instructions = containerfile()
    bases = [args.split()[0] for op, args in instructions if op == "FROM"]
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["requires-python"]
    final = instructions[max(i for i, (op, _) in enumerate(instructions) if op == "FROM") :]

    assert all(re.fullmatch(r"docker\.io/library/python:3\.\d+-slim", base) for base in bases), bases
    assert all(tuple(map(int, b.split(":")[1][:-5].split("."))) >= (3, 11) for b in bases), requires
    assert any(op == "RUN" and "pip install /src" in args for op, args in instructions)
    assert any(op == "COPY" and args.split()[0] == "fetcher" for op, args in instructions)
    [user] = [args for op, args in final if op == "USER"]
    assert user.split(":")[0] not in ("0", "root")
    [entrypoint] = [args for op, args in final if op == "ENTRYPOINT"]
    [cmd] = [args for op, args in final if op == "CMD"]
    assert parse_command(yaml.safe_load(entrypoint) + yaml.safe_load(cmd)) == ("run",)


def _first_night_peaks_mb() -> list[int]:
    """docs/deploy.md's measured first nights (90 days a tenant) at the default `concurrency`, in MB."""
    rows = [line.split("|") for line in (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8").splitlines()]
    return [int(row[4].split()[0]) for row in rows if len(row) > 4 and row[1].strip().startswith("first night")]


def test_the_memory_limits_hold_a_first_night_at_the_default_concurrency_with_margin() -> None:
    """They were 384M/384Mi while a tenant's first `run` fetches 90 days: 533 MB at `concurrency = 16`.
    The units and the run's Job give the same figure, a quarter at least above the documented peak."""
    assert FetchConfig().concurrency == 16  # the column docs/deploy.md measures
    peak = max(_first_night_peaks_mb())
    assert peak > 500
    high = {unit(name)["Service"]["MemoryHigh"] for name in ("fetcher.service", "fetcher@.service")}
    [run] = [c for _, spec in pod_specs() for c in spec["containers"] if c["command"][-1] == "run"]
    limit = run["resources"]["limits"]["memory"]
    assert (high, limit) == ({limit.removesuffix("i")}, limit)
    assert int(limit.removesuffix("Mi")) * 1.048576 >= 1.25 * peak
    assert f"`limits.memory: {limit}`" in (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
