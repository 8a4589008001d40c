"""The gateway's checked-in OpenAPI document is the one FastAPI generates."""

from __future__ import annotations

import json

from producers.gateway import OPENAPI_PATH, openapi_document


def test_checked_in_openapi_document_is_current() -> None:
    """docs/openapi-gateway.json equals the generated document (python -m producers.gateway)."""
    checked_in = json.loads(OPENAPI_PATH.read_text(encoding="utf-8"))
    assert checked_in == openapi_document(), (
        "docs/openapi-gateway.json is stale: run `python -m producers.gateway` and commit it"
    )


def test_document_describes_the_endpoints_and_their_answers() -> None:
    """POST /v1/messages takes an Envelope, answers 202 or a problem; /health answers 200/503."""
    document = openapi_document()
    post = document["paths"]["/v1/messages"]["post"]
    body_schema = post["requestBody"]["content"]["application/json"]["schema"]
    assert body_schema == {"$ref": "#/components/schemas/Envelope"}
    assert "Envelope" in document["components"]["schemas"]
    assert sorted(post["responses"]) == [
        "202",
        "400",
        "401",
        "403",
        "409",
        "413",
        "415",
        "422",
        "502",
        "503",
    ]
    assert post["security"] == [{"HTTPBearer": []}, {"APIKeyHeader": []}]
    assert sorted(document["paths"]["/health"]["get"]["responses"]) == ["200", "503"]
