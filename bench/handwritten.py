"""The script a user would write instead of smartingest: every row of the users table to Iterable's bulkUpdate.

    python bench/handwritten.py --url http://127.0.0.1:8766 --api-key KEY [--schema smartingest_bench]

A psycopg server-side cursor read with fetchmany(1000), each row built into an Iterable user (the email,
the other nine columns in ``dataFields``: dates as Iterable wants them, ``yyyy-MM-dd HH:mm:ss +00:00``,
numerics as JSON numbers), the body encoded with orjson and posted with httpx, one request at a time
on one keep-alive connection. No change detection, no retries, no row outcomes: it sends everything,
every time, and stops at the first failed request. Prints ``{"users", "failed", "requests", "seconds"}``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from datetime import UTC

import httpx
import orjson
import psycopg

DSN = os.environ.get("SMARTINGEST_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")
DATE_FORMAT = "%Y-%m-%d %H:%M:%S +00:00"


def to_user(row: tuple) -> dict:
    user_id, email, first_name, last_name, city, plan, ltv, score, active, signed_up_at = row
    return {
        "email": email,
        "dataFields": {
            "id": user_id,
            "firstName": first_name,
            "lastName": last_name,
            "city": city,
            "plan": plan,
            "ltv": float(ltv) if ltv is not None else None,
            "score": float(score) if score is not None else None,
            "active": active,
            "signedUpAt": signed_up_at.astimezone(UTC).strftime(DATE_FORMAT) if signed_up_at else None,
        },
    }


def sync(url: str, api_key: str, schema: str = "smartingest_bench", dsn: str = DSN, batch: int = 1000) -> dict:
    """Send every row of ``{schema}.users``; returns what Iterable's answers counted."""
    users = failed = requests = 0
    start = time.perf_counter()
    headers = {"Api-Key": api_key, "Content-Type": "application/json"}
    with (
        psycopg.connect(dsn) as con,
        con.cursor(name="users_to_iterable") as cur,
        httpx.Client(base_url=url, headers=headers, timeout=60) as http,
    ):
        cur.execute(
            f"SELECT id, email, first_name, last_name, city, plan, ltv, score, active, signed_up_at FROM {schema}.users"
        )
        while rows := cur.fetchmany(batch):
            body = orjson.dumps({"users": [to_user(row) for row in rows]})
            response = http.post("/api/users/bulkUpdate", content=body)
            response.raise_for_status()
            answer = response.json()
            requests += 1
            users += answer["successCount"]
            failed += answer["failCount"]
    return {"users": users, "failed": failed, "requests": requests, "seconds": round(time.perf_counter() - start, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True, help="Iterable's API address (the bench's sink)")
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--schema", default="smartingest_bench")
    parser.add_argument("--dsn", default=DSN)
    args = parser.parse_args()
    print(json.dumps(sync(args.url, args.api_key, args.schema, args.dsn)))


if __name__ == "__main__":
    main()
