"""`[graph]`: the cloud, its endpoints, the scope, the CA bundle and the proxy."""

from __future__ import annotations

import re

from fetcher.config.constants import CA_BUNDLE_MAX_BYTES
from fetcher.config.model import CLOUDS, GraphConfig
from fetcher.config.resolver import Resolver
from fetcher.config.secret import Secret
from fetcher.config.shape import GraphTable
from fetcher.config.urls import url_problem


def default_scope(base_url: str) -> str:
    """Graph's `.default` scope for a base URL: its scheme and host."""
    match = re.match(r"^(https://[^/]+)", base_url)
    origin = match.group(1) if match else base_url
    return f"{origin}/.default"


_USERINFO = re.compile(r"^[a-z][a-z0-9+.-]*://[^/?#]*@", re.IGNORECASE)  # scheme://user:password@host


def _as_written(value: str) -> str:
    """`got VALUE` as the file writes it (not with its trailing slashes stripped: `https://` read `https:`)."""
    no_host = ", which has no host" if re.match(r"^https://(/|$)", value) else ""
    return f"got {value!r}{no_host}"


class GraphResolver(Resolver):
    """`[graph]` resolved."""

    def graph(self, table: GraphTable) -> GraphConfig:
        cloud = CLOUDS.get(table.cloud)
        if cloud is None:
            raise self.fail(f"[graph] cloud must be one of {', '.join(CLOUDS)}, got {table.cloud!r}")
        if not cloud.secure_score:
            raise self.fail(
                f"[graph] cloud = {table.cloud!r}: Microsoft Graph operated by 21Vianet does not "
                "offer the secureScores API, so there is nothing to fetch there"
            )
        base_url = (cloud.graph if table.base_url is None else table.base_url).rstrip("/")
        authority = (cloud.authority if table.authority_host is None else table.authority_host).rstrip("/")
        for key, written, url in (
            ("base_url", table.base_url, base_url),
            ("authority_host", table.authority_host, authority),
        ):
            if _USERINFO.match(url):  # said without the URL: what precedes the @ may be a password
                raise self.fail(
                    f"[graph] {key} holds a user name or password before its host: Graph and Entra ID take none"
                )
            if not re.match(r"^https://[^/\s]+", url):
                raise self.fail(
                    f"[graph] {key} must be an https:// URL, {_as_written(url if written is None else written)}"
                )
            problem = url_problem(url)
            if problem:
                raise self.fail(f"[graph] {key} {problem}")
        scope = table.scope or default_scope(base_url)
        problem = url_problem(scope) if re.match(r"^https?://", scope, re.IGNORECASE) else None
        if problem:  # api://APP/.default is a scope too; only a URL one is parsed
            raise self.fail(f"[graph] scope {problem}")
        ca_bundle = None
        if table.ca_bundle is not None:
            ca_bundle = self.resolve_path(table.ca_bundle)
            if self.purpose.talks_to_graph:
                self.check_file(ca_bundle, CA_BUNDLE_MAX_BYTES, "[graph] ca_bundle: ")
        return GraphConfig(
            table.cloud,
            base_url,
            authority,
            scope,
            ca_bundle,
            float(table.timeout_seconds),
            table.max_response_bytes,
            self.proxy(table.proxy) if table.proxy is not None else None,
        )

    def proxy(self, value: str) -> Secret:
        """An HTTP proxy for Graph and Entra ID alike; it may carry a password, so it is a secret."""
        if value.startswith(("env:", "file:")):
            if not self.purpose.talks_to_graph:
                return Secret(value, "")
            secret = self.secret(value, "[graph] proxy ")
        else:
            secret = Secret("literal value", value)  # as a literal of [auth] reads: `[graph] proxy literal value`
            if re.match(r"^[a-z]+://[^/@]*:[^/@]*@", value):
                self.literals.append("[graph] proxy")
        url = secret.reveal()
        if url and (not re.match(r"^https?://[^/\s@]*@?[^/\s@]+(:\d+)?/?$", url) or url_problem(url)):
            raise self.fail("[graph] proxy must be an http:// or https:// URL such as http://proxy.example:3128")
        return secret
