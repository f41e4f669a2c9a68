"""Schemathesis over the OpenAPI document: generated requests (valid and invalid, as admin so
the handlers run past authentication) never produce a server error, every status an operation
answers is one the document declares for it (what an acceptance tester writing tests from the
document relies on), and every refusal carries the documented `error` code."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from raas.service.app import create_app
from raas.service.crud import tokens as token_crud
from raas.service.models import Role, User
from raas.service.state import ServiceState
from tests.service.harness import ROLES, seed, settings_for

EXAMPLES = 15


@pytest.fixture
def service_app(database_url: str, tmp_path: Path) -> Iterator[Any]:
    base = settings_for(database_url, tmp_path)
    # Long-polls answer at once here: the fuzzer is after crashes, not waits.
    s = base.model_copy(update={"max_poll_wait_s": 0.0})
    seeded = seed(s, users=ROLES, robots=("arm-1", "arm-2"))
    app = create_app(s)
    app.state.fuzz_admin_id = seeded.users["admin@lab"][0]
    yield app
    app.state.service.db.dispose()


def _fresh_admin_header(state: ServiceState, admin_id: int) -> dict[str, str]:
    """A new admin token per case: a generated logout, token revocation, demotion or
    deactivation of the admin (the fuzzer is that admin) cannot lock us out."""
    with state.db.write() as db:
        admin = db.get(User, admin_id)
        assert admin is not None
        admin.role = Role.admin.value
        admin.active = True
        _, secret = token_crud.issue(
            db, admin, kind="api", name="fuzz", now=datetime.now(UTC), lifetime=None
        )
    return {"Authorization": f"Bearer {secret}"}


#: Endless by design (server-sent events); the long-poll beside it is fuzzed.
SKIP = {("GET", "/robots/{robot_id}/revocations/stream")}


def refusal_fault(case: Any, response: Any) -> str | None:
    """What is wrong with the answer, if anything: a server error, a status the operation does
    not declare in the OpenAPI document, or a refusal without the `{detail, error}` shape."""
    status = response.status_code
    if status >= 500:
        return "server error"
    declared = set(case.operation.responses.status_codes)
    if str(status) not in declared and "default" not in declared:
        return f"status not declared (declared: {', '.join(sorted(declared))})"
    content_type = (response.headers.get("content-type") or [""])[0]
    if status >= 400 and content_type.startswith("application/json") and response.content:
        body = response.json()
        if not isinstance(body, dict) or not isinstance(body.get("error"), str):
            return "refusal without an `error` code"
    return None


@pytest.mark.slow
def test_no_server_errors(service_app: Any) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", service_app)
    state: ServiceState = service_app.state.service
    admin_id: int = service_app.state.fuzz_admin_id
    failures: list[str] = []
    ran = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        if (operation.method.upper(), operation.path) in SKIP:
            continue
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            def fuzz(case: Any) -> None:
                response = case.call(headers=_fresh_admin_header(state, admin_id))
                why = refusal_fault(case, response)
                if why:
                    failures.append(
                        f"{case.method} {case.formatted_path} {case.body!r}: {why}: "
                        f"{response.status_code} {response.text[:300]}"
                    )

            try:
                fuzz()
            except Unsatisfiable:
                assert mode == GenerationMode.NEGATIVE  # nothing in it can be made invalid
                continue
            ran += 1
    print(f"\nfuzzed {ran} operation/mode pairs x {EXAMPLES} examples, {len(failures)} failures")
    assert failures == [], "\n".join(failures[:40])
