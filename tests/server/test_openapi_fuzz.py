"""Schemathesis against the live ``/openapi.json`` of a real ``pets serve``: every
operation the schema publishes, authenticated, with generated parameters and bodies; no
500, and every response conforms to the published schema (status, content type, body).

(Driven through hypothesis directly: schemathesis' pytest plugin does not run under
this repository's pytest.)"""

from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402
from schemathesis.specs.openapi import checks as oc  # noqa: E402

from .conftest import server  # noqa: E402,F401  (this module's own real server)

CHECKS = [
    schemathesis.checks.not_a_server_error,
    oc.status_code_conformance,
    oc.content_type_conformance,
    oc.response_schema_conformance,
]
EXAMPLES = 25  # per operation and mode


def test_every_endpoint_authenticated_never_500_and_conforms(server):  # noqa: F811
    schema = schemathesis.openapi.from_url(server.url + "/openapi.json")
    ops = [r.ok() for r in schema.get_all_operations()]
    seen = {f"{op.method.upper()} {op.path}" for op in ops}
    assert {"GET /healthz", "GET /readyz", "GET /v1/datasets", "POST /v1/explain",
            "POST /v1/release", "GET /v1/remaining", "GET /v1/history",
            "POST /v1/dummy"} <= seen
    statuses: dict[str, set[int]] = {}
    calls = 0
    modes = (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE)
    for op, mode in [(op, mode) for op in ops for mode in modes]:
        @given(case=op.as_strategy(generation_mode=mode))
        @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def run(case) -> None:
            nonlocal calls
            calls += 1
            response = case.call(base_url=server.url, headers=server.headers("alice"),
                                 timeout=30)
            statuses.setdefault(f"{op.method.upper()} {op.path}", set()).add(
                response.status_code)
            assert response.status_code < 500, (case.method, case.path, response.text)
            case.validate_response(response, checks=CHECKS)

        try:
            run()
        except Unsatisfiable:
            # nothing to make invalid: an operation without parameters or body
            assert mode is schemathesis.GenerationMode.NEGATIVE and op.path in {
                "/healthz", "/readyz", "/v1/datasets", "/v1/federation/identity"}, op.path
    assert calls >= 8 * len(modes) * 10  # generated cases, not a handful
    assert set(statuses) == seen
    # the authenticated key really got through: answers, not only refusals
    assert 200 in statuses["GET /v1/datasets"] and 200 in statuses["GET /v1/history"]
