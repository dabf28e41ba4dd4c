"""Global options given after the command (`fetcher run --config x.toml -v`), moved before it."""

from __future__ import annotations

from collections.abc import Sequence

import click

GLOBAL_VALUE_OPTIONS = frozenset({"--config", "--log-format"})


GLOBAL_FLAGS = frozenset({"-v", "--verbose", "-q", "--quiet", "--log-sql"})


def global_option(token: str, command: click.Command) -> int:
    """How many tokens `token` (found after the command) takes as a global option: 0 if it is not one.

    A command's own option of the same name wins (so `config check --verbose` stays the command's).
    """
    name = token.split("=", 1)[0]
    own = {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}
    if name in own:
        return 0
    if name in GLOBAL_VALUE_OPTIONS:
        return 1 if "=" in token else 2
    if token in GLOBAL_FLAGS or (len(token) > 2 and token[0] == "-" and set(token[1:]) == {"v"}):
        return 1
    return 0


def given_log_format(args: Sequence[str]) -> str:
    """The `--log-format` the command line gives, wherever it stands (the last one, as click takes it), for
    errors found before click has read it: an unknown option before the command, help that cannot be written.
    "text" when none is given, or none before `--`."""
    given = "text"
    for position, token in enumerate(args):
        if token == "--":
            break
        if token == "--log-format" and position + 1 < len(args):
            given = args[position + 1]
        elif token.startswith("--log-format="):
            given = token.split("=", 1)[1]
    return given


def value_options(command: click.Command) -> frozenset[str]:
    """The command's options that take a value (whose value must not be taken for a global option)."""
    return frozenset(
        opt
        for param in command.params
        if isinstance(param, click.Option) and not param.is_flag and not param.count
        for opt in param.opts
    )


def hoist(group: click.Group, ctx: click.Context, args: list[str]) -> list[str]:
    """`args` with the global options given after the (sub)command moved before it."""
    command: click.Command = group
    position = 0
    while position < len(args) and isinstance(command, click.Group):  # skip globals, find the command
        token = args[position]
        if token == "--":
            return args
        if token.startswith("-"):
            position += 2 if token in GLOBAL_VALUE_OPTIONS else 1
            continue
        found = command.get_command(ctx, token)
        if found is None:
            return args
        command, position = found, position + 1
    hoisted: list[str] = []
    rest = args[:position]
    values = value_options(command)
    while position < len(args):
        token = args[position]
        if token == "--":
            rest += args[position:]
            break
        taken = global_option(token, command)
        if position + taken > len(args):  # moved before the command, it would take the command for its value
            raise click.BadOptionUsage(token, f"Option '{token}' requires an argument.", ctx=ctx)
        if taken:
            hoisted += args[position : position + taken]
            position += taken
            continue
        step = 2 if token in values else 1
        rest += args[position : position + step]
        position += step
    return hoisted + rest
