"""What we send to Iterable and what the sandbox answers, validated against Iterable's API contract.

Over real HTTP, with the contract's own schemas (`tests/iterable_contract.py` says which library
validates what, and how objects, statuses and content types are read):

1. Request bodies: each case makes our code send for real (a sync run through `service.run`, or a
   writer called directly), the sandbox records every request it received (`record_requests`), and
   each recorded body must fit the request schema of its endpoint. A new writer is one more
   `BodyCase`. The cases of sync types not registered yet are reported as expected failures without
   running, and run as soon as their type is registered.
2. Answers: the routes come from the sandbox's route table (`API_ROUTES`), so an endpoint added there
   is checked without editing this file. Each must be an operation of the contract; its error
   answers (no key, a body that is not JSON, an empty object, injected faults, an oversized body) and
   its success answer (from `EXAMPLES`, one request per endpoint, with the requests that set it up)
   must fit the contract's answer for their status. An endpoint without an example is skipped,
   naming itself.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import decimal
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import duckdb
import httpx
import orjson
import pyarrow as pa
import pytest

from smartingest import service
from smartingest.config.models import DestinationConfig, UsersSync
from smartingest.errors import ConfigError
from smartingest.iterable.client import IterableClient
from smartingest.iterable.identified import users_writer
from smartingest.iterable.list_members import ListMembersWriter
from smartingest.iterable.outcomes import SYNCED
from smartingest.iterable.records import MappedRecord
from smartingest.mapping import compile_user_plan
from smartingest.sandbox import ProjectType, SandboxServer, SandboxSettings
from smartingest.sandbox.app import API_ROUTES, MAX_BODY_BYTES
from smartingest.synctypes import registry
from smartingest.synctypes.common import record_columns, user_objects
from tests.conftest import write_project
from tests.iterable_contract import CONTRACT_PATH, SCHEMA_KEYWORDS, Contract, load_contract

pytestmark = pytest.mark.skipif(not CONTRACT_PATH.exists(), reason=f"the API contract is not at {CONTRACT_PATH}")

API_KEY = "contract-test-key"
# Every /api route the sandbox serves, as "METHOD /path/{template}".
ROUTES = [f"{method} {path}" for method, path, _, _ in API_ROUTES]
BODY_ROUTES = {f"{method} {path}" for method, path, _, reads_body in API_ROUTES if reads_body}


@pytest.fixture(scope="module")
def contract() -> Contract:
    return load_contract()


class Sandboxes:
    """One recording sandbox per project type, started when first asked for and reset on each ask."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.servers: dict[str, SandboxServer] = {}

    def get(self, project_type: ProjectType) -> SandboxServer:
        if project_type not in self.servers:
            settings = SandboxSettings(
                port=0,
                api_key=API_KEY,
                data_dir=self.root / project_type,
                project_type=project_type,
                rate_limits=False,
                record_requests=1000,
                gdpr_daily_cap=None,
            )
            self.servers[project_type] = SandboxServer(settings).start()
        server = self.servers[project_type]
        httpx.post(f"{server.url}/_sandbox/reset", timeout=10).raise_for_status()
        return server

    def stop(self) -> None:
        for server in self.servers.values():
            server.stop()


@pytest.fixture(scope="module")
def sandboxes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandboxes]:
    started = Sandboxes(tmp_path_factory.mktemp("contract-sandboxes"))
    yield started
    started.stop()


@pytest.fixture(scope="module")
def api(sandboxes: Sandboxes) -> Iterator[httpx.Client]:
    """A client of the email-based sandbox, for requests whose answers need no particular state."""
    server = sandboxes.get("email")
    with httpx.Client(base_url=server.url, headers={"Api-Key": API_KEY}, timeout=10) as client:
        yield client


# ---- the contract itself


def test_the_contract_is_valid_swagger_2_wherever_we_use_it(contract: Contract) -> None:
    assert contract.document_errors() == []


def test_the_contract_uses_only_schema_keywords_swagger_2_and_openapi_3_0_share(contract: Contract) -> None:
    # Bodies are validated with the OpenAPI 3.0 dialect (see tests/iterable_contract.py): a keyword
    # outside this set may mean something else in Swagger 2.0.
    assert contract.schema_keywords() - SCHEMA_KEYWORDS == set()


# ---- 1. request bodies our code sends


@dataclass(frozen=True)
class BodyCase:
    """One way our code sends to Iterable: `send` makes it send to the sandbox (and checks the outcome it
    must have); the requests must reach `endpoint`, and every body sent must fit the contract."""

    id: str
    project_type: ProjectType
    endpoint: str
    send: Callable[[SandboxServer, Path], None]
    sync_type: str | None = None  # a sync type the case runs through, which must be registered


CUSTOMERS = """
CREATE TABLE customers AS SELECT * FROM (VALUES
  (1, 'ann@example.com', 'u-1', 'ann.new@example.com', 'Ann', 12.50::DECIMAL(10, 2),
   TIMESTAMPTZ '2024-03-01 12:30:00+00', DATE '1990-05-17', true, 3, ['a', 'b'],
   {'city': 'Paris', 'zip': '75001'}, 'purchase', 'sku-1'),
  (2, 'bob@example.com', 'u-2', 'bob.new@example.com', NULL, NULL, NULL, NULL, NULL, NULL, [],
   {'city': NULL, 'zip': NULL}, 'purchase', 'sku-2'),
  (3, 'cy@example.com', 'u-3', 'cy.new@example.com', 'Cy', 0.10::DECIMAL(10, 2),
   TIMESTAMPTZ '2024-03-02 00:00:00+00', DATE '2001-01-01', false, 0, ['c'],
   {'city': 'Osaka', 'zip': '530-0001'}, 'refund', 'sku-3')
) AS t(id, email, user_id, new_email, first_name, ltv, seen_at, born, vip, visits, tags, address, event_name, sku)
"""

# Every kind of value a column can carry into a request.
VALUE_MAPPINGS = [
    {"from": "first_name", "to": "firstName"},
    {"from": "ltv", "to": "lifetimeValue"},
    {"from": "seen_at", "to": "lastSeen"},
    {"from": "born", "to": "birthday"},
    {"from": "vip", "to": "vip"},
    {"from": "visits", "to": "visits"},
    {"from": "tags", "to": "tags"},
    {"from": "address", "to": "address"},
    {"from": "first_name", "to": "profile.name"},
    {"static": "gold", "to": "tier"},
]


def _run_sync(server: SandboxServer, tmp_path: Path, sync: dict[str, Any], synced: int | None) -> None:
    """A real run of one sync of the customers table (DuckDB) into the sandbox."""
    database = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(database)) as con:
        con.execute(CUSTOMERS)
    sync = dict(sync)
    path = write_project(
        tmp_path,
        server.url,
        table="customers",
        source={"type": "duckdb", "path": str(database)},
        destination={"api_key": API_KEY, "project_type": server.settings.project_type},
        mappings=sync.pop("mappings"),
        sync=sync,
    )
    result = service.run(service.open_workspace(path, home=tmp_path / "home"), "customers_to_users")
    assert result.status == "succeeded", result.error
    if synced is not None:
        assert result.counts["synced"] == synced, result.counts


def _sync_case(
    case_id: str, project_type: ProjectType, endpoint: str, sync: dict[str, Any], synced: int | None = None
) -> BodyCase:
    return BodyCase(case_id, project_type, endpoint, partial(_run_sync, sync=sync, synced=synced), sync["type"])


def _send_users_directly(server: SandboxServer, tmp_path: Path) -> None:
    """The Users writer called directly with records of every value kind and both per-user flags."""
    batch = pa.record_batch(
        {
            "id": pa.array([1, 2], pa.int64()),
            "email": ["ann@example.com", None],
            "user_id": ["u-1", "u-2"],
            "ltv": pa.array([decimal.Decimal("12.50"), None], pa.decimal128(10, 2)),
            "seen": pa.array([dt.datetime(2024, 3, 1, 12, 30, tzinfo=dt.UTC), None], pa.timestamp("us", tz="UTC")),
            "born": pa.array([dt.date(1990, 5, 17), None]),
            "vip": [True, None],
            "visits": pa.array([3, None], pa.int16()),
            "tags": pa.array([["a", "b"], []], pa.list_(pa.string())),
            "prefs": ['{"sms": true, "topics": ["x"]}', None],
        }
    )
    sync = UsersSync.model_validate(
        {
            "model": "m",
            "destination": "d",
            "type": "users",
            "match_on": "user_id",
            "mappings": [
                {"from": "user_id", "to": "userId"},
                {"from": "email", "to": "email"},
                {"from": "ltv", "to": "ltv"},
                {"from": "seen", "to": "lastSeen"},
                {"from": "born", "to": "birthday"},
                {"from": "vip", "to": "vip"},
                {"from": "visits", "to": "visits"},
                {"from": "tags", "to": "tags"},
                {"from": "prefs", "to": "prefs", "parse_json": True},
                {"static": 3, "to": "address.floor"},
            ],
        }
    )
    plan = compile_user_plan(sync.mappings, batch.schema, "userId", prefer_user_id=True, merge_nested_objects=True)
    mapped = user_objects(plan, batch, "id", None)
    assert mapped.rejected == []
    destination = DestinationConfig(api_key=API_KEY, base_url=server.url, project_type="hybrid")

    async def deliver() -> list[Any]:
        async with IterableClient(destination) as client:
            return await users_writer(client, batch_size=1).deliver(record_columns(mapped))

    outcomes = asyncio.run(deliver())
    assert [verdict for _, verdict in outcomes] == [SYNCED, SYNCED]


def _send_list_members_directly(server: SandboxServer, tmp_path: Path) -> None:
    """The static-list writer called directly: existing users (by email and by userId) join a list with
    dataFields, update-existing-users-only, then leave it."""
    headers = {"Api-Key": API_KEY}
    users = {"users": [{"email": "ann@example.com"}, {"userId": "u-2"}]}
    httpx.post(f"{server.url}/api/users/bulkUpdate", headers=headers, json=users, timeout=10).raise_for_status()
    answer = httpx.post(f"{server.url}/api/lists", headers=headers, json={"name": "VIPs"}, timeout=10)
    list_id = answer.raise_for_status().json()["listId"]
    joining = [
        MappedRecord("ann@example.com", "added", "ann@example.com", None, b'{"email":"ann@example.com"}'),
        MappedRecord("u-2", "changed", None, "u-2", b'{"userId":"u-2","dataFields":{"plan":"pro","n":[1,2]}}'),
    ]
    leaving = [
        MappedRecord("ann@example.com", "removed", "ann@example.com", None, b'{"email":"ann@example.com"}'),
        MappedRecord("u-2", "removed", None, "u-2", b'{"userId":"u-2"}'),
    ]
    destination = DestinationConfig(api_key=API_KEY, base_url=server.url, project_type="hybrid")

    async def deliver() -> list[Any]:
        async with IterableClient(destination) as client:
            writer = ListMembersWriter(client, list_id, batch_size=10, update_existing_users_only=True)
            return await writer.deliver(joining) + await writer.deliver(leaving)

    assert [verdict for _, verdict in asyncio.run(deliver())] == [SYNCED] * 4


EMAIL = {"from": "email", "to": "email"}
USER_ID = {"from": "user_id", "to": "userId"}


def _run_on_customers(server: SandboxServer, tmp_path: Path, sync: dict[str, Any]) -> None:
    """A sync run on a project that already holds the customers as users (an email change needs them)."""
    users = [{"email": f"{name}@example.com", "userId": f"u-{i}"} for i, name in enumerate(("ann", "bob", "cy"), 1)]
    answer = httpx.post(
        f"{server.url}/api/users/bulkUpdate", headers={"Api-Key": API_KEY}, json={"users": users}, timeout=10
    )
    answer.raise_for_status()
    _run_sync(server, tmp_path, sync=sync, synced=3)


def _email_change_case(case_id: str, match_on: str, identifier: dict[str, str]) -> BodyCase:
    sync = {"type": "email_change", "match_on": match_on, "new_email": "new_email", "batch_size": None}
    return BodyCase(
        case_id,
        "email",
        "POST /api/users/updateEmail",
        partial(_run_on_customers, sync={**sync, "mappings": [identifier]}),
        "email_change",
    )


BODY_CASES = [
    _sync_case(
        "users-sync-email-project",
        "email",
        "POST /api/users/bulkUpdate",
        {"type": "users", "match_on": "email", "mappings": [EMAIL, USER_ID, *VALUE_MAPPINGS]},
        synced=3,
    ),
    _sync_case(
        "users-sync-userid-project",
        "userid",
        "POST /api/users/bulkUpdate",
        {"type": "users", "match_on": "user_id", "merge_nested_objects": True, "mappings": [USER_ID, *VALUE_MAPPINGS]},
        synced=3,
    ),
    BodyCase("users-writer-hybrid-project", "hybrid", "POST /api/users/bulkUpdate", _send_users_directly),
    # The other sync types run here as soon as they are registered (until then they are reported as
    # expected failures, not run); their rows may be refused, but what was sent must fit the contract.
    _sync_case(
        "events-sync",
        "email",
        "POST /api/events/trackBulk",
        {
            "type": "events",
            "match_on": "email",
            "event_name_column": "event_name",
            "created_at": "seen_at",
            "mappings": [EMAIL, *VALUE_MAPPINGS],
        },
    ),
    _sync_case(
        "catalog-sync",
        "email",
        "POST /api/catalogs/{catalogName}/items",
        {
            "type": "catalog",
            "match_on": None,  # items are not users
            "catalog": "products",
            "item_id": "sku",
            "field_types": {"lifetimeValue": "double"},
            "mappings": VALUE_MAPPINGS,
        },
    ),
    # A static list's key is its identifier: the customers' key, id, is their userId.
    _sync_case(
        "static-list-sync",
        "userid",
        "POST /api/lists/subscribe",
        {
            "type": "static_list",
            "match_on": "user_id",
            "list": {"name": "Newsletter"},
            "mappings": [{"from": "id", "to": "userId"}, *VALUE_MAPPINGS],
        },
        synced=3,
    ),
    BodyCase("list-members-writer", "hybrid", "POST /api/lists/unsubscribe", _send_list_members_directly),
    _email_change_case("email-change-sync", "email", EMAIL),
    _email_change_case("email-change-by-user-id-sync", "user_id", USER_ID),
    *(
        _sync_case(
            f"user-deletion-{action}-sync",
            "email",
            endpoint,
            {"type": "user_deletion", "match_on": "email", "action": action, "batch_size": None, "mappings": [EMAIL]},
        )
        for action, endpoint in (
            ("forget", "POST /api/users/forget"),
            ("unforget", "POST /api/users/unforget"),
            ("delete", "DELETE /api/users/{email}"),
        )
    ),
    _sync_case(
        "user-deletion-delete-by-user-id-sync",
        "email",
        "DELETE /api/users/byUserId/{userId}",
        {"type": "user_deletion", "match_on": "user_id", "action": "delete", "batch_size": None, "mappings": [USER_ID]},
    ),
]


def _registered(sync_type: str) -> bool:
    try:
        registry.sync_type(sync_type)
    except ConfigError:
        return False
    return True


def _body_case_param(case: BodyCase) -> Any:
    if case.sync_type is None or _registered(case.sync_type):
        return pytest.param(case, id=case.id)
    reason = f"the {case.sync_type} sync type is not registered yet (smartingest.synctypes.registry)"
    return pytest.param(case, id=case.id, marks=pytest.mark.xfail(reason=reason, run=False))


@pytest.mark.parametrize("case", [_body_case_param(case) for case in BODY_CASES])
def test_request_bodies_our_code_sends_fit_the_contract(
    case: BodyCase, contract: Contract, sandboxes: Sandboxes, tmp_path: Path
) -> None:
    server = sandboxes.get(case.project_type)
    case.send(server, tmp_path)
    recorded = httpx.get(f"{server.url}/_sandbox/requests", timeout=10).json()["requests"]
    assert recorded.get(case.endpoint), f"no request reached {case.endpoint}; the sandbox received {list(recorded)}"
    problems: list[str] = []
    for endpoint, requests in recorded.items():
        method, template = endpoint.split(" ", 1)
        operation = contract.operation(method, template)
        assert operation is not None, f"{endpoint} is not an operation of the contract"
        for request in requests:
            if operation.body_schema is None:
                assert request["body"] == "", f"{endpoint} takes no body in the contract, we sent one"
                continue
            assert request["content_type"] == "application/json", (endpoint, request["content_type"])
            problems += [f"{endpoint}: {p}" for p in operation.request_problems(orjson.loads(request["body"]))]
    assert problems == []


# ---- 2. the sandbox's answers


@dataclass(frozen=True)
class Ref:
    """A value saved from an earlier answer of the same example (a list's id)."""

    name: str


@dataclass(frozen=True)
class Call:
    """One request: its route, path parameters, query and JSON body (None: no body)."""

    route: str
    path: dict[str, Any] = field(default_factory=dict)
    query: dict[str, Any] = field(default_factory=dict)
    body: Any = None
    save: dict[str, str] = field(default_factory=dict)  # Ref name -> key of the answer's JSON object


@dataclass(frozen=True)
class Example:
    """A happy-path request of one endpoint, after the requests that make it succeed."""

    call: Call
    setup: tuple[Call, ...] = ()
    project_type: ProjectType = "email"


ANN = "ann@example.com"
USER = Call("POST /api/users/update", body={"email": ANN, "userId": "u-ann", "dataFields": {"plan": "pro", "n": 1}})
FORGET = Call("POST /api/users/forget", body={"email": ANN})
CATALOG = Call("POST /api/catalogs/{catalogName}", path={"catalogName": "products"})
ITEMS = Call(
    "POST /api/catalogs/{catalogName}/items",
    path={"catalogName": "products"},
    body={
        "documents": {"sku-1": {"name": "Mug", "price": 9.5}, "sku-2": {"name": "Cup", "price": 4.0}},
        "replaceUploadedFieldsOnly": False,
    },
)
ITEM = {"catalogName": "products", "itemId": "sku-1"}
EVENT = {"email": ANN, "eventName": "purchase", "id": "evt-1", "createdAt": 1_700_000_000, "dataFields": {"total": 9.5}}
EVENT_BY_USER_ID = {**{k: v for k, v in EVENT.items() if k != "email"}, "userId": "u-ann", "id": "evt-2"}
NEW_LIST = Call("POST /api/lists", body={"name": "Newsletter", "description": "weekly"}, save={"listId": "listId"})
SUBSCRIBE = Call("POST /api/lists/subscribe", body={"listId": Ref("listId"), "subscribers": [{"email": ANN}]})

# One happy-path request per endpoint, keyed by route; every request of an example is checked too.
EXAMPLES: dict[str, Example] = {
    "POST /api/users/update": Example(USER),
    "POST /api/users/updateEmail": Example(
        Call("POST /api/users/updateEmail", body={"currentEmail": ANN, "newEmail": "ann.new@example.com"}), (USER,)
    ),
    "POST /api/users/bulkUpdate": Example(
        Call("POST /api/users/bulkUpdate", body={"users": [{"email": ANN, "dataFields": {"n": 1}}, {"email": "nope"}]})
    ),
    "POST /api/users/forget": Example(FORGET, (USER,)),
    "POST /api/users/unforget": Example(Call("POST /api/users/unforget", body={"email": ANN}), (USER, FORGET)),
    "GET /api/users/getByEmail": Example(Call("GET /api/users/getByEmail", query={"email": ANN}), (USER,)),
    "GET /api/users/getFields": Example(Call("GET /api/users/getFields"), (USER,)),
    "GET /api/users/forgotten": Example(Call("GET /api/users/forgotten"), (USER, FORGET)),
    "GET /api/users/forgottenUserIds": Example(
        Call("GET /api/users/forgottenUserIds"),
        (
            Call("POST /api/users/update", body={"userId": "u-ann"}),
            Call("POST /api/users/forget", body={"userId": "u-ann"}),
        ),
        "userid",  # email-based projects forget by email only
    ),
    "GET /api/users/byUserId": Example(Call("GET /api/users/byUserId", query={"userId": "u-ann"}), (USER,)),
    "GET /api/users/byUserId/{userId}": Example(Call("GET /api/users/byUserId/{userId}", {"userId": "u-ann"}), (USER,)),
    "DELETE /api/users/byUserId/{userId}": Example(
        Call("DELETE /api/users/byUserId/{userId}", {"userId": "u-ann"}), (USER,)
    ),
    "GET /api/users/{email}": Example(Call("GET /api/users/{email}", {"email": ANN}), (USER,)),
    "DELETE /api/users/{email}": Example(Call("DELETE /api/users/{email}", {"email": ANN}), (USER,)),
    "GET /api/catalogs": Example(Call("GET /api/catalogs"), (CATALOG,)),
    "POST /api/catalogs/{catalogName}": Example(CATALOG),
    "DELETE /api/catalogs/{catalogName}": Example(
        Call("DELETE /api/catalogs/{catalogName}", {"catalogName": "products"}), (CATALOG,)
    ),
    "GET /api/catalogs/{catalogName}/fieldMappings": Example(
        Call("GET /api/catalogs/{catalogName}/fieldMappings", {"catalogName": "products"}), (CATALOG, ITEMS)
    ),
    "PUT /api/catalogs/{catalogName}/fieldMappings": Example(
        Call(
            "PUT /api/catalogs/{catalogName}/fieldMappings",
            {"catalogName": "products"},
            body={"mappingsUpdates": [{"fieldName": "price", "fieldType": "double"}]},
        ),
        (CATALOG,),
    ),
    "POST /api/catalogs/{catalogName}/items": Example(ITEMS, (CATALOG,)),
    "DELETE /api/catalogs/{catalogName}/items": Example(
        Call("DELETE /api/catalogs/{catalogName}/items", {"catalogName": "products"}, body={"itemIds": ["sku-1"]}),
        (CATALOG, ITEMS),
    ),
    "GET /api/catalogs/{catalogName}/items": Example(
        # Two items a page of one: the answer carries nextPageUrl too.
        Call("GET /api/catalogs/{catalogName}/items", {"catalogName": "products"}, {"pageSize": 1}),
        (CATALOG, ITEMS),
    ),
    "GET /api/catalogs/{catalogName}/items/{itemId}": Example(
        Call("GET /api/catalogs/{catalogName}/items/{itemId}", ITEM), (CATALOG, ITEMS)
    ),
    "PUT /api/catalogs/{catalogName}/items/{itemId}": Example(
        Call("PUT /api/catalogs/{catalogName}/items/{itemId}", ITEM, body={"value": {"name": "Mug", "price": 8.0}}),
        (CATALOG,),
    ),
    "PATCH /api/catalogs/{catalogName}/items/{itemId}": Example(
        Call("PATCH /api/catalogs/{catalogName}/items/{itemId}", ITEM, body={"update": {"price": 7.5}}),
        (CATALOG, ITEMS),
    ),
    "DELETE /api/catalogs/{catalogName}/items/{itemId}": Example(
        Call("DELETE /api/catalogs/{catalogName}/items/{itemId}", ITEM), (CATALOG, ITEMS)
    ),
    "POST /api/events/track": Example(Call("POST /api/events/track", body=EVENT)),
    "POST /api/events/trackBulk": Example(
        Call("POST /api/events/trackBulk", body={"events": [EVENT, {"email": "nope", "eventName": "purchase"}]})
    ),
    "GET /api/events/byUserId/{userId}": Example(
        Call("GET /api/events/byUserId/{userId}", {"userId": "u-ann"}, {"limit": 10}),
        (USER, Call("POST /api/events/track", body={**EVENT_BY_USER_ID})),
    ),
    "GET /api/events/{email}": Example(
        Call("GET /api/events/{email}", {"email": ANN}, {"limit": 10}), (Call("POST /api/events/track", body=EVENT),)
    ),
    "GET /api/lists": Example(Call("GET /api/lists"), (NEW_LIST,)),
    "POST /api/lists": Example(NEW_LIST),
    "POST /api/lists/subscribe": Example(SUBSCRIBE, (NEW_LIST,)),
    "POST /api/lists/unsubscribe": Example(
        Call(
            "POST /api/lists/unsubscribe",
            body={"listId": Ref("listId"), "subscribers": [{"email": ANN}], "channelUnsubscribe": False},
        ),
        (NEW_LIST, SUBSCRIBE),
    ),
    "GET /api/lists/getUsers": Example(
        Call("GET /api/lists/getUsers", query={"listId": Ref("listId")}), (NEW_LIST, SUBSCRIBE)
    ),
    "GET /api/lists/{listId}/size": Example(
        Call("GET /api/lists/{listId}/size", {"listId": Ref("listId")}), (NEW_LIST, SUBSCRIBE)
    ),
    "DELETE /api/lists/{listId}": Example(Call("DELETE /api/lists/{listId}", {"listId": Ref("listId")}), (NEW_LIST,)),
}

# Path parameter values for requests that need no particular resource (error answers).
PROBE_VALUES = {"email": "nobody@example.com", "userId": "nobody", "catalogName": "nothing", "itemId": "x", "listId": 1}


def _resolve(value: Any, saved: dict[str, Any]) -> Any:
    if isinstance(value, Ref):
        return saved[value.name]
    if isinstance(value, dict):
        return {k: _resolve(v, saved) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, saved) for v in value]
    return value


def _url(route: str, path: dict[str, Any]) -> str:
    template = route.split(" ", 1)[1]
    for name, value in path.items():
        template = template.replace("{" + name + "}", httpx.URL(str(value)).raw_path.decode())
    return template


def _probe_path(route: str) -> dict[str, Any]:
    """Path parameters for a route from PROBE_VALUES (any other parameter gets a plain word)."""
    names = [part[1:-1] for part in route.split(" ", 1)[1].split("/") if part.startswith("{")]
    return {name: PROBE_VALUES.get(name, "probe") for name in names}


def exchange(
    client: httpx.Client,
    contract: Contract,
    route: str,
    path: dict[str, Any] | None = None,
    query: dict[str, Any] | None = None,
    content: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """Send one request over HTTP and check the answer against the contract's answer for its status."""
    method, template = route.split(" ", 1)
    operation = contract.operation(method, template)
    assert operation is not None, f"{route} is not an operation of the contract"
    if content is not None:
        headers = {"Content-Type": "application/json", **(headers or {})}
    response = client.request(method, _url(route, path or {}), params=query or None, content=content, headers=headers)
    content_type = response.headers.get("content-type", "")
    problems = operation.response_problems(response.status_code, content_type, response.content)
    assert problems == [], f"{route} answered {response.status_code} {response.text[:500]}"
    return response


def run_call(client: httpx.Client, contract: Contract, call: Call, saved: dict[str, Any]) -> httpx.Response:
    """One example request: its body must fit the contract's request schema, its answer a success one."""
    body = _resolve(call.body, saved)
    if body is not None:
        method, template = call.route.split(" ", 1)
        operation = contract.operation(method, template)
        assert operation is not None, f"{call.route} is not an operation of the contract"
        assert operation.request_problems(body) == [], f"the example request of {call.route} breaks the contract"
    response = exchange(
        client,
        contract,
        call.route,
        _resolve(call.path, saved),
        _resolve(call.query, saved),
        orjson.dumps(body) if body is not None else None,
    )
    assert 200 <= response.status_code < 300, f"{call.route} refused its example: {response.text[:500]}"
    for name, key in call.save.items():
        saved[name] = response.json()[key]
    return response


@pytest.mark.parametrize("route", ROUTES)
def test_every_sandbox_route_is_an_operation_of_the_contract(route: str, contract: Contract) -> None:
    method, template = route.split(" ", 1)
    assert contract.operation(method, template) is not None, f"the contract defines no {route}"


def test_every_example_is_of_a_route_the_sandbox_serves() -> None:
    assert set(EXAMPLES) - set(ROUTES) == set()


@pytest.mark.parametrize("route", ROUTES)
def test_success_answer_fits_the_contract(route: str, contract: Contract, sandboxes: Sandboxes) -> None:
    example = EXAMPLES.get(route)
    if example is None:
        pytest.skip(f"no example request for {route} yet: add one to EXAMPLES in {Path(__file__).name}")
    server = sandboxes.get(example.project_type)
    saved: dict[str, Any] = {}
    with httpx.Client(base_url=server.url, headers={"Api-Key": API_KEY}, timeout=10) as client:
        for call in (*example.setup, example.call):
            run_call(client, contract, call, saved)


@pytest.mark.parametrize("route", ROUTES)
def test_error_answers_fit_the_contract(route: str, contract: Contract, api: httpx.Client) -> None:
    path = _probe_path(route)
    body = b"{}" if route in BODY_ROUTES else None
    with httpx.Client(base_url=str(api.base_url), timeout=10) as anonymous:
        assert exchange(anonymous, contract, route, path, content=body).status_code == 401
    wrong_key = {"Api-Key": "not-the-key"}
    assert exchange(api, contract, route, path, content=body, headers=wrong_key).status_code == 401
    if route in BODY_ROUTES:
        assert exchange(api, contract, route, path, content=b'{"not json').status_code == 400
        # Whatever an empty object gets (most endpoints: 400 for a missing field), it must fit.
        exchange(api, contract, route, path, content=b"{}")
        exchange(api, contract, route, path, content=b"[]")
    else:
        # Nothing to find: the answer (an empty result, or an error) must fit.
        exchange(api, contract, route, path)


@pytest.mark.parametrize("route", ROUTES)
def test_fault_and_limit_answers_fit_the_contract(route: str, contract: Contract, api: httpx.Client) -> None:
    path = _probe_path(route)
    body = b"{}" if route in BODY_ROUTES else None
    try:
        for status in (429, 500, 503):
            faults = {"endpoint": route, "status_burst": {"count": 1, "status": status, "retry_after": 1}}
            api.put("/_sandbox/faults", json=faults).raise_for_status()
            assert exchange(api, contract, route, path, content=body).status_code == status
        api.put("/_sandbox/faults", json={"endpoint": route, "error_rate": 1.0}).raise_for_status()
        assert exchange(api, contract, route, path, content=body).status_code == 500
    finally:
        api.delete("/_sandbox/faults").raise_for_status()
    if route in BODY_ROUTES:
        oversized = b'{"pad": "' + b"x" * MAX_BODY_BYTES + b'"}'
        assert exchange(api, contract, route, path, content=oversized).status_code == 413
