"""Hooks for the schemathesis run of scripts/test.sh.

POST /games takes a `scheduled_at` that must lie in the future and within
ten years: a rule about *now* that JSON Schema cannot state, so the document
says it in words and lists the 422. Without this hook every generated
date-time (nearly all in the past) would be a "schema-valid request
rejected". The hook moves each valid date-time into the accepted window,
keeping the generated one's spread; invalid ones are left for the negative
tests.
"""

from datetime import datetime, timedelta, timezone

import schemathesis

TEN_YEARS = 3650 * 24 * 3600


@schemathesis.hook
def map_body(context, body):
    operation = context.operation
    if operation is None or (operation.method.upper(), operation.path) != ("POST", "/games"):
        return body
    if not isinstance(body, dict) or not isinstance(body.get("scheduled_at"), str):
        return body
    try:
        generated = datetime.fromisoformat(body["scheduled_at"].replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return body
    offset = int(generated.timestamp()) % TEN_YEARS
    when = datetime.now(timezone.utc) + timedelta(hours=1, seconds=offset)
    return {**body, "scheduled_at": when.isoformat(timespec="seconds")}
