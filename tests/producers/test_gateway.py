"""The HTTP ingest gateway on the real broker: 202 only after the ack, one publish per retried
request, distinct 401/403/413/422 answers that never echo input, and health that follows Kafka."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from aiokafka import ConsumerRecord
from structlog.testing import capture_logs

from hub.provision import ensure_topics
from hub.settings import KafkaSettings, Settings
from producers.apikeys import ApiKeyStore, new_api_key
from producers.gateway import build_gateway
from producers.sdk import HubClient
from tests.support.kafka import read_topic
from topics.catalogue import MessageType
from topics.codec import decode_envelope
from topics.examples import example_path, load_example
from topics.messages import Envelope
from topics.topics import TopicName

pytestmark = pytest.mark.kafka

# Keys are minted per test run: none is written anywhere.
OWN_KEY, OWN_ENTRY = new_api_key("norrbotten-test", ["SE2321000230-SYN*"])
OTHER_KEY, OTHER_ENTRY = new_api_key("other-region-test", ["SE2321000999-*"])
KEYS = ApiKeyStore([OWN_ENTRY, OTHER_ENTRY])
AUTH = {"Authorization": f"Bearer {OWN_KEY}"}
PATIENT = "19121212-1212"

UNAUTHORIZED = {
    "type": "about:blank",
    "title": "Unauthorized",
    "status": 401,
    "detail": (
        "missing or unknown API key: send it as 'Authorization: Bearer <key>' or 'X-Api-Key: <key>'"
    ),
}


def example_json(message_type: MessageType = MessageType.ADMISSION_NOTICE) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(example_path(message_type).read_text(encoding="utf-8"))
    return data


def body_of(data: object) -> bytes:
    return json.dumps(data).encode()


def closed_port() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{probe.getsockname()[1]}"


@pytest.fixture
async def settings(bootstrap: str, topic_prefix: str) -> Settings:
    """Settings for this test's fresh topics, provisioned."""
    result = Settings(kafka=KafkaSettings(bootstrap_servers=bootstrap, topic_prefix=topic_prefix))
    await ensure_topics(result)
    return result


@pytest.fixture
async def http(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client talking to the gateway app, whose HubClient reaches the real broker."""
    async with HubClient(settings) as hub:
        app = build_gateway(settings, hub, KEYS)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            yield client


@pytest.fixture
async def offline_http() -> AsyncIterator[httpx.AsyncClient]:
    """The gateway app in front of a closed port: no broker at all."""
    settings = Settings(
        kafka=KafkaSettings(bootstrap_servers=closed_port(), request_timeout_ms=1000)
    )
    hub = HubClient(settings, attempts=1, backoff_s=0)
    app = build_gateway(settings, hub, KEYS)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            yield client
    finally:
        await hub.stop()


async def read_back(settings: Settings, expected: int) -> list[ConsumerRecord[bytes, bytes]]:
    return await read_topic(
        settings.kafka.bootstrap_servers,
        settings.topic(TopicName.CARE_EPISODE_EVENTS),
        expected=expected,
    )


def decoded(record: ConsumerRecord[bytes, bytes]) -> Envelope:
    return decode_envelope(record.value, dict(record.headers))


async def post(
    http: httpx.AsyncClient, body: bytes, headers: dict[str, str] | None = None
) -> httpx.Response:
    return await http.post(
        "/v1/messages",
        content=body,
        headers={"Content-Type": "application/json", **AUTH, **(headers or {})},
    )


# --- accepted ----------------------------------------------------------------------------------


async def test_accepted_message_is_on_the_topic_where_the_answer_says(
    http: httpx.AsyncClient, settings: Settings
) -> None:
    """202 names the topic, partition and offset of the record, which is the envelope, keyed by
    its episode."""
    envelope = load_example(MessageType.ADMISSION_NOTICE)

    response = await post(http, example_path(MessageType.ADMISSION_NOTICE).read_bytes())

    assert response.status_code == 202, response.text
    [record] = await read_back(settings, expected=1)
    assert response.json() == {
        "message_id": str(envelope.message_id),
        "topic": settings.topic(TopicName.CARE_EPISODE_EVENTS),
        "partition": record.partition,
        "offset": record.offset,
    }
    assert decoded(record) == envelope
    assert record.key == b"sunderby:2027:000123"


async def test_x_api_key_header_is_accepted_too(
    http: httpx.AsyncClient, settings: Settings
) -> None:
    """The key may come in X-Api-Key instead of Authorization."""
    response = await http.post(
        "/v1/messages",
        content=example_path(MessageType.CARE_REQUEST).read_bytes(),
        headers={"Content-Type": "application/json", "X-Api-Key": OWN_KEY},
    )
    assert response.status_code == 202, response.text
    [record] = await read_back(settings, expected=1)
    assert decoded(record) == load_example(MessageType.CARE_REQUEST)
    assert record.key == b"00000000-0000-4000-8000-000000000012"


# --- idempotency -------------------------------------------------------------------------------


async def published_ids(settings: Settings, http: httpx.AsyncClient, expected: int) -> list[str]:
    """Publish a marker on the same episode after the requests under test, then read the topic
    up to it: a duplicate would show before the marker (same key, same partition)."""
    marker = example_json(MessageType.DISCHARGE_NOTICE)
    response = await post(http, body_of(marker))
    assert response.status_code == 202, response.text
    records = await read_back(settings, expected=expected)
    return [str(decoded(record).message_id) for record in records]


async def test_retried_request_gets_the_same_answer_and_publishes_once(
    http: httpx.AsyncClient, settings: Settings
) -> None:
    """The same message posted twice answers 202 twice with the same body; one record."""
    body = example_path(MessageType.ADMISSION_NOTICE).read_bytes()

    first = await post(http, body)
    second = await post(http, body)

    assert (first.status_code, second.status_code) == (202, 202), second.text
    assert second.json() == first.json()
    assert await published_ids(settings, http, expected=2) == [
        "00000000-0000-4000-8000-000000000001",
        str(load_example(MessageType.DISCHARGE_NOTICE).message_id),
    ]


async def test_retry_with_other_formatting_is_still_the_same_message(
    http: httpx.AsyncClient, settings: Settings
) -> None:
    """Key order and whitespace do not make a retry a different message."""
    data = example_json()
    first = await post(http, body_of(data))
    reordered = json.dumps(dict(reversed(list(data.items()))), indent=4).encode()
    second = await post(http, reordered)

    assert (first.status_code, second.status_code) == (202, 202), second.text
    assert second.json() == first.json()
    assert len(await published_ids(settings, http, expected=2)) == 2


async def test_concurrent_identical_requests_publish_once(
    http: httpx.AsyncClient, settings: Settings
) -> None:
    """Five identical requests in flight at once all get the one answer; one record."""
    body = example_path(MessageType.ADMISSION_NOTICE).read_bytes()

    responses = await asyncio.gather(*(post(http, body) for _ in range(5)))

    assert [r.status_code for r in responses] == [202] * 5
    assert len({r.text for r in responses}) == 1
    assert len(await published_ids(settings, http, expected=2)) == 2


async def test_idempotency_key_header_identifies_a_retry(
    http: httpx.AsyncClient, settings: Settings
) -> None:
    """With an Idempotency-Key, a retry identical to the first gets the first answer."""
    headers = {"Idempotency-Key": "journal-batch-17-item-3"}
    body = example_path(MessageType.ADMISSION_NOTICE).read_bytes()

    first = await post(http, body, headers)
    second = await post(http, body, headers)

    assert (first.status_code, second.status_code) == (202, 202), second.text
    assert second.json() == first.json()
    assert len(await published_ids(settings, http, expected=2)) == 2


async def test_idempotency_key_reused_for_another_message_is_a_conflict(
    http: httpx.AsyncClient, settings: Settings
) -> None:
    """One Idempotency-Key on two different messages: the second gets 409, is not published."""
    headers = {"Idempotency-Key": "journal-batch-17-item-4"}
    first = await post(http, example_path(MessageType.ADMISSION_NOTICE).read_bytes(), headers)
    other = await post(http, example_path(MessageType.PLANNING_DOCUMENT).read_bytes(), headers)

    assert (first.status_code, other.status_code) == (202, 409), other.text
    assert len(await published_ids(settings, http, expected=2)) == 2


async def test_same_message_id_with_a_different_body_is_a_conflict(
    http: httpx.AsyncClient, settings: Settings
) -> None:
    """A reused message_id with other content gets 409 and is not published."""
    data = example_json()
    first = await post(http, body_of(data))
    changed = await post(http, body_of({**data, "sent_at": "2027-03-26T07:45:00Z"}))

    assert first.status_code == 202, first.text
    assert changed.status_code == 409
    assert changed.json() == {
        "type": "about:blank",
        "title": "Conflict",
        "status": 409,
        "detail": "this idempotency key (or message_id) was already used for a different message",
    }
    assert len(await published_ids(settings, http, expected=2)) == 2


# --- refusals ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer dhk_not-a-key-anyone-was-given-0000000000000"},
        {"X-Api-Key": "dhk_not-a-key-anyone-was-given-0000000000000"},
        {"Authorization": f"Basic {OWN_KEY}"},
    ],
    ids=["none", "unknown-bearer", "unknown-x-api-key", "not-bearer"],
)
async def test_missing_or_unknown_key_is_401(
    http: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    """No key, an unknown key or another auth scheme: 401 with a Bearer challenge."""
    response = await http.post(
        "/v1/messages",
        content=example_path(MessageType.ADMISSION_NOTICE).read_bytes(),
        headers={"Content-Type": "application/json", **headers},
    )
    assert response.status_code == 401
    assert response.json() == UNAUTHORIZED
    assert response.headers["WWW-Authenticate"] == "Bearer"


async def test_key_of_another_system_is_403(http: httpx.AsyncClient) -> None:
    """A valid key whose system may not send for the envelope's sender: 403."""
    response = await post(
        http,
        example_path(MessageType.ADMISSION_NOTICE).read_bytes(),
        {"Authorization": f"Bearer {OTHER_KEY}"},
    )
    assert response.status_code == 403
    assert response.json() == {
        "type": "about:blank",
        "title": "Forbidden",
        "status": 403,
        "detail": "sender: system 'other-region-test' may not send for this unit",
    }


TOO_LARGE = {
    "type": "about:blank",
    "title": "Request Entity Too Large",
    "status": 413,
    "detail": "the body must be at most 262144 bytes",
}


def ten_megabyte_field() -> bytes:
    data = example_json(MessageType.PLANNING_DOCUMENT)
    data["payload"]["summary"] = "x" * 10 * 1024 * 1024
    return body_of(data)


async def test_body_over_the_limit_is_413_on_content_length(http: httpx.AsyncClient) -> None:
    """A 10 MB field is refused with 413 from its Content-Length."""
    response = await post(http, ten_megabyte_field())
    assert response.status_code == 413
    assert response.json() == TOO_LARGE


async def test_streamed_body_over_the_limit_is_413(http: httpx.AsyncClient) -> None:
    """A chunked body without Content-Length is cut off at the limit."""

    async def chunks() -> AsyncIterator[bytes]:
        body = ten_megabyte_field()
        for start in range(0, len(body), 64 * 1024):
            yield body[start : start + 64 * 1024]

    response = await http.post(
        "/v1/messages",
        content=chunks(),
        headers={"Content-Type": "application/json", **AUTH},
    )
    assert response.status_code == 413
    assert response.json() == TOO_LARGE


async def test_contract_errors_are_422_with_field_paths_and_no_values(
    http: httpx.AsyncClient,
) -> None:
    """A bad ward and a bad check digit: 422 listing both fields; no patient number in it."""
    data = example_json()
    data["patient"] = "19121212-1213"
    data["payload"]["ward"] = "not-an-hsa-id"

    response = await post(http, body_of(data))

    assert response.status_code == 422
    assert response.json() == {
        "type": "about:blank",
        "title": "Unprocessable Entity",
        "status": 422,
        "detail": "the message breaks the contract",
        "errors": [
            {
                "field": "patient",
                "type": "personal_identity_number",
                "message": "check digit does not match",
            },
            {
                "field": "payload.ward",
                "type": "hsa_id",
                "message": (
                    "must be an HSA-id: SE, a 10-digit organisation number, '-', "
                    "1-31 letters or digits"
                ),
            },
        ],
    }
    assert "19121212" not in response.text
    assert "not-an-hsa-id" not in response.text


async def test_422_never_contains_the_valid_patient_number(http: httpx.AsyncClient) -> None:
    """An envelope with a valid patient and a bad field answers without the patient number."""
    data = example_json()
    data["payload"]["home_municipality"] = PATIENT  # a number where a kommunkod belongs

    response = await post(http, body_of(data))

    assert response.status_code == 422
    assert response.json()["errors"] == [
        {
            "field": "payload.home_municipality",
            "type": "municipality_code",
            "message": (
                "must be a kommunkod: four ASCII digits, the first two a county code 01-25"
            ),
        }
    ]
    assert PATIENT not in response.text
    assert "191212121212" not in response.text


async def test_request_validation_errors_do_not_echo_the_input(http: httpx.AsyncClient) -> None:
    """FastAPI's own 422 (an over-long Idempotency-Key) is answered without the header's value."""
    secretish = f"{PATIENT}-" + "k" * 300
    response = await post(
        http,
        example_path(MessageType.ADMISSION_NOTICE).read_bytes(),
        {"Idempotency-Key": secretish},
    )
    assert response.status_code == 422
    assert response.json() == {
        "type": "about:blank",
        "title": "Unprocessable Entity",
        "status": 422,
        "detail": "the request breaks the API",
        "errors": [
            {
                "field": "header.Idempotency-Key",
                "type": "string_too_long",
                "message": "String should have at most 200 characters",
            }
        ],
    }
    assert PATIENT not in response.text


def problem(
    status: int, title: str, detail: str, errors: list[dict[str, str]] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": title,
        "status": status,
        "detail": detail,
    }
    if errors is not None:
        body["errors"] = errors
    return body


def bad_request(detail: str) -> dict[str, Any]:
    return problem(400, "Bad Request", detail)


def invalid(*errors: tuple[str, str, str]) -> dict[str, Any]:
    return problem(
        422,
        "Unprocessable Entity",
        "the message breaks the contract",
        [{"field": f, "type": t, "message": m} for f, t, m in errors],
    )


def with_fields(base: MessageType = MessageType.ADMISSION_NOTICE, **changes: object) -> bytes:
    data = example_json(base)
    payload_changes = changes.pop("payload", {})
    data.update(changes)
    data["payload"].update(payload_changes)
    return body_of(data)


_ENUM_MESSAGE = (
    "Input should be "
    + ", ".join(f"'{t.value}'" for t in list(MessageType)[:-1])
    + f" or '{list(MessageType)[-1].value}'"
)

HOSTILE: list[tuple[str, bytes, int, dict[str, Any]]] = [
    (
        "truncated-json",
        b'{"message_id": ',
        400,
        bad_request("body: not JSON (line 1, column 16)"),
    ),
    (
        "not-utf8",
        b'{"sender": "\xff"}',
        400,
        bad_request("body: not UTF-8"),
    ),
    (
        "duplicate-key",
        b'{"patient": "19121212-1212", "patient": "19701063-2391"}',
        400,
        bad_request("body: duplicate key in a JSON object"),
    ),
    (
        "deep-nesting",
        b'{"payload": ' + b"[" * 10_000 + b"]" * 10_000 + b"}",
        400,
        bad_request("body: not JSON the hub accepts (NaN, huge number or too deep)"),
    ),
    (
        "nan",
        with_fields(payload={"admitted_at": "x"}).replace(b'"x"', b"NaN"),
        400,
        bad_request("body: not JSON the hub accepts (NaN, huge number or too deep)"),
    ),
    (
        "json-array",
        b"[]",
        422,
        invalid(
            ("(body)", "model_type", "Input should be a valid dictionary or instance of Envelope")
        ),
    ),
    (
        "wrong-types",
        with_fields(sender=123, payload={"admitted_at": 1774510200}),
        422,
        invalid(
            ("sender", "string_type", "Input should be a valid string"),
            (
                "payload.admitted_at",
                "timestamp_type",
                "must be an ISO 8601 date-time with a UTC offset",
            ),
        ),
    ),
    (
        "naive-timestamp",
        with_fields(occurred_at="2027-03-26T07:40:00"),
        422,
        invalid(("occurred_at", "timezone_aware", "Input should have timezone info")),
    ),
    (
        "unknown-type",
        with_fields(message_type="teleport", payload={"kind": "teleport"}),
        422,
        invalid(
            ("message_type", "enum", _ENUM_MESSAGE),
            ("payload", "union_tag_invalid", "invalid value"),
        ),
    ),
    (
        "bad-check-digit",
        with_fields(patient="19121212-1213"),
        422,
        invalid(("patient", "personal_identity_number", "check digit does not match")),
    ),
    (
        "unknown-field-named-like-a-patient",
        body_of({**example_json(), PATIENT: "x"}),
        422,
        invalid(("[personnummer]", "extra_forbidden", "Extra inputs are not permitted")),
    ),
    (
        "long-free-text",
        with_fields(MessageType.GENERAL_MESSAGE, payload={"text": "y" * 5000, "recipients": []}),
        422,
        invalid(
            ("payload.text", "string_too_long", "String should have at most 4000 characters"),
            ("payload.recipients", "empty", "must name at least one unit"),
        ),
    ),
]


@pytest.mark.parametrize(
    ("body", "status", "expected"),
    [case[1:] for case in HOSTILE],
    ids=[case[0] for case in HOSTILE],
)
async def test_hostile_input_is_refused_with_a_reason_and_the_gateway_keeps_serving(
    http: httpx.AsyncClient, settings: Settings, body: bytes, status: int, expected: dict[str, Any]
) -> None:
    """Each hostile body gets its own refusal; the next valid message is still accepted."""
    response = await post(http, body)

    assert response.status_code == status, response.text
    assert response.json() == expected
    assert PATIENT not in response.text

    after = await post(http, example_path(MessageType.ADMISSION_NOTICE).read_bytes())
    assert after.status_code == 202, after.text
    records = await read_back(settings, expected=1)
    assert [decoded(record).message_id for record in records] == [
        load_example(MessageType.ADMISSION_NOTICE).message_id
    ]


async def test_body_not_declared_json_is_415(http: httpx.AsyncClient) -> None:
    """A form post is refused before its body is read."""
    response = await http.post(
        "/v1/messages",
        content=example_path(MessageType.ADMISSION_NOTICE).read_bytes(),
        headers={"Content-Type": "application/x-www-form-urlencoded", **AUTH},
    )
    assert response.status_code == 415
    assert response.json() == problem(
        415, "Unsupported Media Type", "the body must be application/json"
    )


# --- lifespan and broker health -------------------------------------------------------------------


async def test_health_is_200_with_the_broker(http: httpx.AsyncClient) -> None:
    """With Kafka answering, /health says ok."""
    response = await http.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "broker": "reachable"}


async def test_health_is_503_without_a_broker(offline_http: httpx.AsyncClient) -> None:
    """Pointed at a closed port, /health says unavailable."""
    response = await offline_http.get("/health")
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "broker": "unreachable"}


async def test_post_without_a_broker_is_503_with_retry_after(
    offline_http: httpx.AsyncClient,
) -> None:
    """A valid message that cannot reach Kafka gets 503 and Retry-After, not 202."""
    response = await post(offline_http, example_path(MessageType.ADMISSION_NOTICE).read_bytes())
    assert response.status_code == 503
    assert response.json() == problem(
        503,
        "Service Unavailable",
        "the message broker is unavailable; retry later with the same message",
    )
    assert response.headers["Retry-After"] == "5"


async def test_lifespan_starts_and_stops_the_client(settings: Settings) -> None:
    """Running the app's lifespan connects the client; leaving it disconnects."""
    hub = HubClient(settings)
    app = build_gateway(settings, hub, KEYS)
    async with app.router.lifespan_context(app):
        assert await hub.is_reachable(timeout_s=5.0) is True
        receipt = await hub.publish(load_example(MessageType.ADMISSION_NOTICE))
    [record] = await read_back(settings, expected=1)
    assert (record.partition, record.offset) == (receipt.partition, receipt.offset)


async def test_lifespan_survives_a_broker_that_is_down_at_start() -> None:
    """A gateway may start before Kafka: the lifespan logs it and the app still comes up."""
    settings = Settings(
        kafka=KafkaSettings(bootstrap_servers=closed_port(), request_timeout_ms=1000)
    )
    hub = HubClient(settings, attempts=1, backoff_s=0)
    app = build_gateway(settings, hub, KEYS)
    with capture_logs() as logs:
        async with app.router.lifespan_context(app):
            pass
    assert [e["event"] for e in logs if e["event"].startswith("gateway.")] == [
        "gateway.broker_unavailable_at_start"
    ]
