"""`[alerts]`: rules and channels, names unique, every rule's channels and tenants defined."""

from __future__ import annotations

import difflib
import ipaddress
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from fetcher.config.constants import CA_BUNDLE_MAX_BYTES
from fetcher.config.model import AlertChannel, AlertRule, AlertsConfig, ChannelType, Purpose, RuleKind, TenantConfig
from fetcher.config.resolver import Resolver
from fetcher.config.secret import Secret, reference_only
from fetcher.config.shape import AlertChannelTable, AlertRuleTable, AlertsTable
from fetcher.config.urls import url_problem
from fetcher.errors import ConfigError


def unique_names(names: Sequence[str], where: str, fail: Callable[[str], ConfigError]) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise fail(f"{where}: name {name!r} is used twice")
        seen.add(name)


def closest_name(name: str, names: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, sorted(names), n=1, cutoff=0.5)
    return f" (did you mean {close[0]!r}?)" if close else ""


class AlertsResolver(Resolver):
    """`[alerts]` resolved."""

    def alerts(
        self, table: AlertsTable, tenants: tuple[TenantConfig, ...], *, discovered: bool = False
    ) -> AlertsConfig:
        """Rules and channels: names unique, kinds and types known, every rule's channels and tenants exist.

        `discovered` (tenants_source = "partner"): a rule's tenants are GUIDs, not looked up, since the
        customers are known only once discovered; a rule naming one that is not among them matches nothing."""
        channels = tuple(self.alert_channel(c, n) for n, c in enumerate(table.channels, 1))
        unique_names([c.name for c in channels], "[[alerts.channels]]", self.fail)
        known = None if discovered else {t.tenant_id for t in tenants}
        rules = tuple(self.alert_rule(r, n, {c.name for c in channels}, known) for n, r in enumerate(table.rules, 1))
        unique_names([r.name for r in rules], "[[alerts.rules]]", self.fail)
        values = table.model_dump(exclude={"rules", "channels"})
        return AlertsConfig(rules=rules, channels=channels, **values)

    def alert_rule(self, table: AlertRuleTable, number: int, channels: set[str], tenants: set[str] | None) -> AlertRule:
        where = f"[[alerts.rules]] {table.name!r}" if table.name else f"[[alerts.rules]] #{number}"
        kind = self.choice(RuleKind, table.kind, f"{where}: kind")
        if not table.channels:
            raise self.fail(f"{where}: channels must name at least one [[alerts.channels]]")
        for name in table.channels:
            if name not in channels:
                raise self.fail(
                    f"{where}: channel {name!r} is not defined in [[alerts.channels]]{closest_name(name, channels)}"
                )
        chosen = tuple(self.guid(t, f"{where}: tenants") for t in table.tenants)
        for tenant_id in chosen:
            if tenants is not None and tenant_id not in tenants:
                raise self.fail(f"{where}: tenant {tenant_id} is not a configured tenant")
        values = table.model_dump(exclude={"kind", "channels", "tenants"})
        return AlertRule(kind=kind, channels=tuple(table.channels), tenants=chosen, **values)

    def alert_channel(self, table: AlertChannelTable, number: int) -> AlertChannel:
        where = f"[[alerts.channels]] {table.name!r}" if table.name else f"[[alerts.channels]] #{number}"
        kind = self.choice(ChannelType, table.type, f"{where}: type")
        ca_bundle = self.resolve_path(table.ca_bundle) if table.ca_bundle else None
        if ca_bundle is not None:
            self.check_file(ca_bundle, CA_BUNDLE_MAX_BYTES, f"{where}: ca_bundle: ")
        if kind is ChannelType.EMAIL:
            return self.email_channel(table, where, ca_bundle)
        if table.url is None:
            raise self.fail(f"{where}: url is required for type {kind.value!r} (env:NAME or file:PATH)")
        url = self.channel_secret(table.url, f"{where}: url ")
        # A URL written in the file is checked whatever the command; one from env:/file: when it is read (every
        # command that sends, and `config check`), so `alerts --dry-run` still needs no secret.
        written = table.url if not table.url.startswith(("env:", "file:")) else url.reveal()
        problem = url_problem(written) if written else None
        if problem:
            raise self.fail(f"{where}: url {problem}")
        return AlertChannel(table.name, kind, url=url, ca_bundle=ca_bundle)

    def email_channel(self, table: AlertChannelTable, where: str, ca_bundle: Path | None) -> AlertChannel:
        for key, value in (("smtp_host", table.smtp_host), ("from", table.sender)):
            if not value:
                raise self.fail(f"{where}: {key} is required for type 'email'")
        if not table.to:
            raise self.fail(f"{where}: to must list at least one address")
        if table.password is not None and not table.username:
            raise self.fail(f"{where}: password is given without username")
        password = self.channel_secret(table.password, f"{where}: password ") if table.password else None
        host = table.smtp_host or ""
        if password is not None and not table.starttls and table.smtp_port != 465 and not _loopback(host):
            self.warnings.append(
                f"{where}: starttls = false sends the SMTP password to {host} in clear text: set starttls = true "
                "(or smtp_port = 465, TLS from the first byte)"
            )
        return AlertChannel(
            table.name,
            ChannelType.EMAIL,
            smtp_host=table.smtp_host or "",
            smtp_port=table.smtp_port,
            starttls=table.starttls,
            username=table.username,
            password=password,
            sender=table.sender or "",
            to=tuple(table.to),
            ca_bundle=ca_bundle,
        )

    def channel_secret(self, value: str, where: str) -> Secret:
        """A webhook URL or SMTP password: read when this purpose sends, else kept by reference."""
        if self.purpose in (Purpose.FETCH, Purpose.ALERTS):
            return self.secret(value, where)
        return reference_only(value)

    def note_channel_literals(self, table: AlertsTable) -> None:
        for channel in table.channels:
            for key, value in (("url", channel.url), ("password", channel.password)):
                if value and not value.startswith(("env:", "file:")):
                    self.literals.append(f"[[alerts.channels]] {channel.name!r}: {key}")


def _loopback(host: str) -> bool:
    """`localhost` or a loopback address: a password sent there in clear never leaves the machine."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
