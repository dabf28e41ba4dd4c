"""Graph resources: what a tenant's work fetches, admits and saves, one module per resource.

A resource is one Graph collection the fetcher keeps (today `secureScores`). It is three functions and
a name, wired together in a `Resource` in its own module here and listed once in `RESOURCES`:

- `fetch(client, plan, stats)`: the HTTP side, an async iterator of pages for one tenant, through the
  run's `GraphClient` (`list_pages` follows `@odata.nextLink` for any collection, `get_item` reads one
  entity); retries, limits and tokens come with the client.
- `admit(objects, context, tenant_id, keep_raw, into)`: pure; `fetcher.admit.admit` with the resource's
  normalizer (JSON -> rows, raising `PayloadError`) and, if it is archived, how to pack its archive row.
  Every object passes the same depth, NUL, tenant and identity checks whatever its resource.
- `save(conn, admission, saved_at, tenant_saved)`: SQL, in the caller's transaction: upsert the rows
  (and archive rows). The save stage (`fetcher.store.save`) adds the rejections and the ledger row.

To add a resource (say `/security/secureScoreControlProfiles`):

1. Write `fetcher/resources/control_profiles.py` with its fetch (`client.list_pages(tenant,
   "/security/secureScoreControlProfiles", None, stats)` for a collection Graph pages without `$top`),
   its normalizer (in `fetcher/normalize.py`, pure, with its hypothesis test), its save (its tables in
   `fetcher/store/`, a migration in `migrations/versions/`), and `RESOURCE = Resource(...)`.
2. Add it to `RESOURCES` below; `resources_for` decides which plans fetch it.

Nothing in the scheduler (`fetcher.runner`) or the pipeline (`fetcher.pipeline`) changes: each tenant's
work fetches its resources one after another; a resource whose fetch fails is recorded in the tenant's
ledger row (`error_message` starts with the resource's name when the tenant has more than one) and does
not keep the other resources' data from being saved in the tenant's transaction.
"""

from __future__ import annotations

from typing import Any

from fetcher.plan import Plan
from fetcher.resources import control_profiles, secure_scores
from fetcher.resources.base import Resource

# Every resource a tenant's run fetches, in this order: the one place a resource is registered.
RESOURCES: tuple[Resource[Any], ...] = (secure_scores.RESOURCE, control_profiles.RESOURCE)


def resources_for(plan: Plan) -> tuple[Resource[Any], ...]:
    """The resources a plan fetches: one secureScore by id (`fetcher get`) is that resource alone; control
    profiles only when the plan says so (`Plan.profiles`: due, enabled, or a rebuild)."""
    if plan.score_id is not None or plan.profiles is None:
        return (secure_scores.RESOURCE,)
    return RESOURCES
