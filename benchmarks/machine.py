"""The machine a run came from: CPU, cores, memory, load, Python and the versions that matter."""

from __future__ import annotations

import asyncio
import os
import platform
import sqlite3
import subprocess
from importlib import metadata
from pathlib import Path

from benchmarks.harness import REPO, Postgres

PACKAGES = (
    "securescore-fetcher",
    "aiohttp",
    "azure-identity",
    "azure-core",
    "SQLAlchemy",
    "aiosqlite",
    "asyncpg",
    "orjson",
    "tenacity",
    "msgraph-sdk",
    "microsoft-kiota-http",
    "httpx",
    "psutil",
    "py-spy",
)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def load() -> str:
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return "unknown"
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f}"


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def _postgres_version(postgres: Postgres) -> str:
    async def query() -> str:
        import asyncpg

        conn = await asyncpg.connect(postgres.plain_url, timeout=10)
        try:
            return str(await conn.fetchval("SHOW server_version"))
        finally:
            await conn.close()

    try:
        return asyncio.run(query())
    except Exception as error:  # any failure only means the version is not shown
        return f"unavailable ({type(error).__name__})"


def code_version() -> str:
    """The commit measured, and whether the work tree differed from it (read-only: no index refresh)."""
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, env=env, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = (
            subprocess.run(
                ["git", "diff-index", "--quiet", "HEAD", "--"], cwd=REPO, env=env, capture_output=True, check=False
            ).returncode
            != 0
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git work tree)"
    return f"{commit} + uncommitted changes" if dirty else commit


def describe(postgres: Postgres | None) -> list[tuple[str, str]]:
    facts = [
        ("code", code_version()),
        ("CPU", _cpu_model()),
        ("cores", str(os.cpu_count())),
        ("RAM", _memory()),
        ("OS", f"{platform.system()} {platform.release()}"),
        ("Python", f"{platform.python_implementation()} {platform.python_version()}"),
        ("SQLite", sqlite3.sqlite_version),
    ]
    if postgres is not None:
        facts.append(("PostgreSQL", _postgres_version(postgres)))
    facts.append(("packages", ", ".join(f"{name} {_version(name)}" for name in PACKAGES)))
    return facts
