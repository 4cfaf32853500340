"""The demo: a sample DuckDB source, the embedded sandbox, and two runs of a Users sync.

Everything is deterministic (seeded), so two demos print the same counts.
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import duckdb
import httpx
import pyarrow as pa
from rich.console import Console

from smartingest import service

DEMO_API_KEY = "demo-api-key"
DEMO_PORT = 8765
SYNC = "customers_to_users"
EVENTS_SYNC = "signups_to_events"

FIRST_NAMES = [
    "Ava",
    "Liam",
    "Maya",
    "Noah",
    "Zoe",
    "Ethan",
    "Lena",
    "Omar",
    "Iris",
    "Hugo",
    "Nina",
    "Theo",
    "Sara",
    "Ravi",
    "Mia",
    "Jonas",
    "Lucia",
    "Kenji",
    "Amara",
    "Felix",
]
LAST_NAMES = [
    "Martin",
    "Garcia",
    "Chen",
    "Okafor",
    "Novak",
    "Silva",
    "Kowalski",
    "Dubois",
    "Haddad",
    "Larsen",
    "Moreau",
    "Tanaka",
    "Rossi",
    "Schmidt",
    "Nguyen",
    "Ibrahim",
]
CITIES = [
    ("Paris", "FR"),
    ("Berlin", "DE"),
    ("Austin", "US"),
    ("Toronto", "CA"),
    ("Lagos", "NG"),
    ("Osaka", "JP"),
    ("Lisbon", "PT"),
    ("Denver", "US"),
    ("Milan", "IT"),
    ("Seoul", "KR"),
]
PLANS = ["free", "starter", "pro", "enterprise"]

PROJECT_TEMPLATE = """\
# A Users sync and an Events sync from a sample DuckDB file into the local Iterable sandbox.
sources:
  sample:
    type: duckdb
    path: customers.duckdb
models:
  customers:
    source: sample
    sql: >
      select id, email, first_name, last_name, city, country, plan, lifetime_value, signed_up_at, newsletter
      from customers
    primary_key: id
destinations:
  sandbox:
    api_key: ${{ITERABLE_API_KEY:-{api_key}}}
    base_url: {base_url}
    project_type: email
    environment: test
syncs:
  customers_to_users:
    model: customers
    destination: sandbox
    type: users
    match_on: email
    batch_size: 1000
    mappings:
      - {{from: email, to: email}}
      - {{from: first_name, to: firstName}}
      - {{from: last_name, to: lastName}}
      - {{from: city, to: address.city}}
      - {{from: country, to: address.country}}
      - {{from: plan, to: plan}}
      - {{from: lifetime_value, to: lifetimeValue}}
      - {{from: signed_up_at, to: signedUpAt}}
      - {{from: newsletter, to: newsletterOptIn}}
      - {{static: smartingest-demo, to: importedBy}}
    schedule: {{every: 15m}}
  signups_to_events:
    model: customers
    destination: sandbox
    type: events
    match_on: email
    event_name: signedUp
    created_at: signed_up_at
    mappings:
      - {{from: email, to: email}}
      - {{from: plan, to: plan}}
    schedule: {{every: 15m}}
"""


def create_sample_source(path: Path, customers: int, seed: int = 7) -> None:
    """A DuckDB file with a customers table of realistic, deterministic rows (two with a bad email)."""
    rng = random.Random(seed)
    start = datetime(2022, 1, 1, tzinfo=UTC)
    rows = []
    for i in range(1, customers + 1):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        city, country = rng.choice(CITIES)
        email = f"{first}.{last}.{i}@example.com".lower()
        if i in (17, 4242):
            email = f"{first}.{last}.{i}-at-example.com".lower()  # Iterable refuses these: shows row-level errors
        rows.append(
            (
                i,
                email,
                first,
                last,
                city,
                country,
                rng.choice(PLANS),
                Decimal(rng.randint(0, 500_000)) / 100,
                start + timedelta(minutes=rng.randint(0, 1_000_000)),
                rng.random() < 0.6,
            )
        )
    columns = [
        "id",
        "email",
        "first_name",
        "last_name",
        "city",
        "country",
        "plan",
        "lifetime_value",
        "signed_up_at",
        "newsletter",
    ]
    table = pa.Table.from_pylist([dict(zip(columns, row, strict=True)) for row in rows]).cast(
        pa.schema(
            [
                ("id", pa.int32()),
                ("email", pa.string()),
                ("first_name", pa.string()),
                ("last_name", pa.string()),
                ("city", pa.string()),
                ("country", pa.string()),
                ("plan", pa.string()),
                ("lifetime_value", pa.decimal128(12, 2)),
                ("signed_up_at", pa.timestamp("us", tz="UTC")),
                ("newsletter", pa.bool_()),
            ]
        )
    )
    path.unlink(missing_ok=True)
    with duckdb.connect(str(path)) as con:
        con.register("sample", table)
        con.execute("CREATE TABLE customers AS SELECT * FROM sample")
        con.execute("ALTER TABLE customers ADD PRIMARY KEY (id)")


def change_sample_source(path: Path) -> dict[str, int]:
    """Some business happens: upgrades, new sign-ups, closed accounts. Returns what was done."""
    with duckdb.connect(str(path)) as con:
        con.execute("UPDATE customers SET plan = 'pro', lifetime_value = lifetime_value + 99 WHERE id % 97 = 0")
        (updated,) = con.execute("SELECT count(*) FROM customers WHERE id % 97 = 0").fetchall()[0]
        (top,) = con.execute("SELECT max(id) FROM customers").fetchall()[0]
        con.execute(
            f"""INSERT INTO customers SELECT id + {top}, 'new.customer.' || (id + {top}) || '@example.com',
                first_name, last_name, city, country, 'free', 0, TIMESTAMPTZ '2026-11-01 09:00:00+00', true
                FROM customers WHERE id <= 25"""
        )
        con.execute("DELETE FROM customers WHERE id BETWEEN 101 AND 110")
    return {"updated": int(updated), "inserted": 25, "deleted": 10}


def _show_money(source_path: Path, sandbox_url: str, console: Console) -> None:
    """Money leaves as its own digits: a few upgraded customers' lifetime value, in the source and in Iterable."""
    with duckdb.connect(str(source_path), read_only=True) as con:
        rows = con.execute(
            "SELECT email, lifetime_value::VARCHAR FROM customers WHERE id % 97 = 0 ORDER BY id LIMIT 4"
        ).fetchall()
    console.print("\nMoney arrives exactly (numeric(12,2) in the source, lifetimeValue in Iterable):")
    for email, value in rows:
        user = httpx.get(
            f"{sandbox_url}/api/users/getByEmail", params={"email": email}, headers={"Api-Key": DEMO_API_KEY}
        ).json()
        held = (user.get("user") or {}).get("dataFields", {}).get("lifetimeValue")
        console.print(f"  {email}: source {value}, Iterable {held!r}", highlight=False)


def _free_port(preferred: int) -> int:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", preferred))
            return preferred
        except OSError:
            sock.bind(("127.0.0.1", 0))
            return int(sock.getsockname()[1])


def run_demo(
    directory: Path, customers: int, console: Console, print_run_summary: Callable[[service.RunResult], None]
) -> None:
    """Build the sample, start the sandbox, run the sync twice and print what happened."""
    from smartingest.sandbox import SandboxServer, SandboxSettings

    directory = directory.resolve()
    for leftover in ("customers.duckdb", "sandbox", ".smartingest"):
        target = directory / leftover
        shutil.rmtree(target, ignore_errors=True) if target.is_dir() else target.unlink(missing_ok=True)
    directory.mkdir(parents=True, exist_ok=True)
    database = directory / "customers.duckdb"
    create_sample_source(database, customers)
    console.print(f"[bold]1.[/] Sample source: {customers} customers in {database}")

    port = _free_port(DEMO_PORT)
    settings = SandboxSettings(port=port, api_key=DEMO_API_KEY, project_type="email", data_dir=directory / "sandbox")
    with SandboxServer(settings) as sandbox:
        project = directory / "smartingest.yaml"
        project.write_text(PROJECT_TEMPLATE.format(api_key=DEMO_API_KEY, base_url=sandbox.url), encoding="utf-8")
        console.print(
            f"[bold]2.[/] Sandbox (an Iterable-compatible test project) at {sandbox.url}; project file {project}"
        )
        os.environ.pop("ITERABLE_API_KEY", None)
        ws = service.open_workspace(project, home=directory / ".smartingest")

        console.print("\n[bold]3.[/] First run: change data capture starts, every row is new")
        first = service.run(ws, SYNC)
        print_run_summary(first)
        console.print(f"\n   and the events sync ({EVENTS_SYNC}): one signedUp event per customer")
        print_run_summary(service.run(ws, EVENTS_SYNC))

        done = change_sample_source(database)
        console.print(
            f"\n[bold]4.[/] The source changes: {done['updated']} customers upgraded, "
            f"{done['inserted']} signed up, {done['deleted']} closed their account"
        )
        c = service.plan(ws, SYNC).counts
        console.print(
            f"   `sync plan` finds {c.added} added (the sign-ups and the rows Iterable rejected last time, "
            f"which are always sent again), {c.changed} changed, {c.removed} removed, "
            f"{c.unchanged} unchanged"
        )

        console.print("\n[bold]5.[/] Second run: only the changes are sent")
        second = service.run(ws, SYNC)
        print_run_summary(second)
        console.print(
            f"\n   {EVENTS_SYNC}: new customers get their event; a changed row is sent again with the same "
            "event id, so Iterable replaces its event instead of adding a second one"
        )
        print_run_summary(service.run(ws, EVENTS_SYNC))
        events = httpx.get(
            f"{sandbox.url}/api/events/new.customer.{customers + 1}@example.com", headers={"Api-Key": DEMO_API_KEY}
        ).json()
        if events.get("events"):
            console.print("\nIts signedUp event as the sandbox holds it:")
            console.print_json(data=events["events"][0])

        response = httpx.get(
            f"{sandbox.url}/api/users/getByEmail",
            params={"email": f"new.customer.{customers + 1}@example.com"},
            headers={"Api-Key": DEMO_API_KEY},
        )
        if response.status_code == 200 and response.json().get("user"):
            console.print("\nA new customer as the sandbox now holds it:")
            console.print_json(data=response.json()["user"])
        _show_money(database, sandbox.url, console)

    cli = Path(sys.executable).with_name("smartingest")
    cli_name = str(cli) if cli.exists() else "smartingest"
    console.print(
        f"""
[bold]Where to look next[/] (from {directory}, where the project file and its state live)
  {cli_name} runs list
  {cli_name} runs show {first.run_id} --status rejected
  {cli_name} sandbox --port {port} --api-key {DEMO_API_KEY} --data-dir sandbox
  {cli_name} sync plan {SYNC}          (with the sandbox running)
  docs/configuration.md explains the project file; docs/runs.md how the counts add up.

[bold]The web UI[/] (the syncs, their runs and each rejected row): from {directory},
  {cli_name} token create me           prints a token to sign in with
  {cli_name} serve --port 8080         then open http://127.0.0.1:8080/ and sign in with it""",
        highlight=False,
        soft_wrap=True,
    )
