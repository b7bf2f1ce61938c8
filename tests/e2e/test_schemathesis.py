"""Schemathesis against the service's own OpenAPI schema: for every operation, inputs that fit the
schema (positive) and inputs that break it (negative: random bytes as uploads, wrong types, huge
numbers, odd strings), sent through ASGI. Not one may be answered with a 5xx, and every 4xx is one
line of JSON.

The cases come from schemathesis's Hypothesis strategies (`operation.as_strategy(mode)`) inside an
ordinary test: its pytest integration (`schemathesis.pytest.from_fixture`) needs pytest < 9. Generation
is kept cheap (at most 2 steps); the examples per operation are few and derandomized, so that a run
takes seconds and repeats exactly."""
from dataclasses import replace

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.generation.modes import GenerationMode

from unifashion.service.app import create_app
from unifashion.service.limits import ServiceLimits

OPERATIONS = [("GET", "/health"), ("GET", "/api/categories"), ("POST", "/api/search/text"),
              ("POST", "/api/search/image"), ("POST", "/api/search/composed"), ("POST", "/api/search/image-to-text"),
              ("POST", "/api/caption"), ("POST", "/api/generate"), ("POST", "/api/classify"),
              ("POST", "/api/tryon"), ("GET", "/items/{item_id}/image")]
EXAMPLES = 40  # per operation and mode


@pytest.fixture(scope="module")
def service_schema(service_search, tiny_tryon_model):
    limits = replace(ServiceLimits(), max_steps=2, generation_seconds=20.0)
    app = create_app(service_search, limits, tryon=tiny_tryon_model)
    yield schemathesis.openapi.from_asgi("/openapi.json", app)
    app.state.service.text_batcher.close()


def test_every_operation_is_fuzzed(service_schema):
    found = {(result.ok().method.upper(), result.ok().path) for result in service_schema.get_all_operations()}
    assert found == set(OPERATIONS)


# negative cases need an input that can break the schema: a body (every string fits a path parameter)
CASES = [(method, path, mode) for method, path in OPERATIONS for mode in GenerationMode
         if mode is GenerationMode.POSITIVE or method == "POST"]


@pytest.mark.parametrize("method, path, mode", CASES, ids=[f"{m} {p} {g}" for m, p, g in CASES])
def test_no_server_errors(service_schema, method, path, mode):
    operation = service_schema[path][method]
    statuses = []

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def check(case):
        response = case.call()
        statuses.append(response.status_code)
        assert response.status_code < 500, (case.path_parameters, case.query, case.body, response.status_code,
                                            response.text[:300])
        if response.status_code >= 400:
            assert response.headers["content-type"][0].startswith("application/json"), response.headers
            detail = response.json()["detail"]
            assert isinstance(detail, str) and detail and "\n" not in detail, detail

    check()
    assert statuses  # the operation was called
    if mode is GenerationMode.POSITIVE and path in ("/health", "/api/search/text", "/api/generate"):
        assert 200 in statuses, statuses  # valid inputs reach the model (uploads of random bytes cannot)
