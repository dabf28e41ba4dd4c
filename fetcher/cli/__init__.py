"""The `fetcher` command: parse, load the configuration, call the library, map errors to exit codes.

Exit codes: 0 every tenant succeeded; 1 some failed (the others' data is stored) or, for `status`,
some tenant's data is stale; 2 usage or configuration error; 3 the database cannot be reached or
another run holds its lock; 4 every tenant failed (often one shared cause: credentials, network);
130/143 stopped by SIGINT/SIGTERM; 141 the reader of standard output went away (nothing said).

The package: `group` is the `fetcher` group and its global options (`hoist` accepts them after the
command too); `context` what each command is given; `exits` errors to exit codes; `options` the options
commands share; `running` what the fetching commands share; then one module per command or group
(`config`, `migrate`, `vacuum`, `fetch`, `archive`, `status`, `report`, `alerts`, `metrics`, `demo`,
`tenants`),
each registering its commands on `main` when imported here.
"""

from __future__ import annotations

import gc

# No collection while the commands' modules load (click and the package's own; 18 collections, 3.4 M of
# `fetcher --help`'s 277 M instructions); `_Fetcher.main` then holds the collector off the command's own
# imports. Turned back on before the import ends, so a process that imports this keeps its collector.
_collecting = gc.isenabled()
gc.disable()

# Each command imports what it uses, in its own body: `fetcher --help` then loads click and little else
# (issue 17: start-up was 1.1 s of imports), and the simulator and the report's HTML code load only for
# the commands that use them. tests/test_cli_startup.py holds the line.
try:
    from fetcher.cli import (  # noqa: F401 - importing a command's module registers it on `main`
        alerts,
        archive,
        config,
        demo,
        fetch,
        metrics,
        migrate,
        report,
        status,
        tenants,
        vacuum,
    )
    from fetcher.cli.group import main
finally:
    if _collecting:
        gc.enable()

__all__ = ["main"]
