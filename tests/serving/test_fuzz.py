"""Schemathesis against the server's own OpenAPI document: no generated request, valid
or deliberately invalid, gets a 5xx."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402
from schemathesis.generation import GenerationMode  # noqa: E402


def test_no_generated_request_gets_a_server_error(serving_home: Path) -> None:
    from fastapi.testclient import TestClient

    from loopml.serving import create_app

    # Unbatched: schemathesis calls the app from event loops of its own, and a batcher
    # belongs to the loop that started it.
    app = create_app(serving_home, "models:/plans/1", max_body_mb=0.5, batching=False)
    errors: list[str] = []
    with TestClient(app):  # runs the lifespan: the model is loaded and warm
        schema = schemathesis.openapi.from_asgi("/openapi.json", app)
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) == 14  # every route, /feedback included
        for operation in operations:
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

                @given(case=operation.as_strategy(generation_mode=mode))
                @settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
                def fuzz(case: Any) -> None:
                    response = case.call()
                    if response.status_code >= 500:
                        errors.append(
                            f"{case.method} {case.formatted_path} {case.body!r}: "
                            f"{response.status_code} {response.text[:300]}"
                        )

                try:
                    fuzz()
                except Unsatisfiable:  # no invalid form of a route without parameters
                    assert mode is GenerationMode.NEGATIVE
    assert errors == []
