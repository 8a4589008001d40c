"""The ops app: the recipient API, signed links, the ops API, ``/metrics`` and the dashboard.

Four audiences, one FastAPI app (``build_api``):

**Recipient systems** (the secure side; per-unit bearer keys, ``hub.ops.keys``):

* ``GET /v1/units/{hsa_id}/deliveries?since=&after=&limit=&only_unreceipted=`` — the unit's own
  deliveries, oldest first, with their envelopes (keyset paging: pass ``next_since`` and
  ``next_after`` of a page to get the next one). ``since`` is an ISO 8601 instant with an offset
  (URL-encode a ``+``; ``Z`` needs no encoding).
* ``POST /v1/units/{hsa_id}/receipts`` ``{"delivery_id", "receipted_by"}`` — ``202`` once the
  receipt is on the receipts topic (the broker acknowledged it); ``200`` with
  ``already_receipted`` when the store already has a receipt; ``404`` unknown delivery; ``403``
  another unit's delivery. The tracker is the only writer of receipts: this endpoint publishes.

A key names one unit; a request for any other unit's path is ``403`` before anything is read.
Errors are RFC 9457-style problem bodies; ``422`` lists field paths and rules, never input.

**Staff following a link in a notification** (no sign-in; the HMAC-signed link is the
credential, ``hub.links``): ``GET /l/kvittera/{delivery_id}?exp=&sig=`` receipts one delivery
(channel ``link``; ``receipted_by`` is the recipient unit's own HSA-id, since a link cannot say
who clicked), ``GET /l/bekrafta/{escalation_id}?exp=&sig=`` lets on-call staff acknowledge an
escalation digest (``Store.acknowledge``: no further levels for its deliveries). Each answers
a small HTML page without patient data. Receipt ids are derived from (delivery, channel), so a
second click republishes nothing new (``hub.ops.receipts``).

**Operations** (no patient data in any response): ``GET /v1/ops/backlog``, ``/v1/ops/alerts``,
``/v1/ops/summary``, ``GET /metrics`` (Prometheus), ``GET /health``, and the dashboard ``GET /``
(Swedish; ``?lang=en`` for English): server-rendered Jinja2 with autoescape, updated in place by
``static/dashboard.js`` polling the ops API. The page loads nothing from outside the hub.

Store, clock, settings, directory, keys and publisher reach the endpoints through ``Depends``
(``get_store``, ``get_clock``, ...), so tests swap them with ``app.dependency_overrides``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from pathlib import Path
from typing import Annotated, Any, Final, Literal, Protocol
from uuid import UUID

from aiokafka.errors import KafkaError
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from pydantic import AwareDatetime, BaseModel, ConfigDict

from hub.calendar import STOCKHOLM
from hub.clock import Clock
from hub.directory import Directory, DirectoryHistory
from hub.links import InvalidLink, LinkAction, verify
from hub.logs import get_logger
from hub.notify.templates import format_age
from hub.ops.deadletters import DeadLetterCounter
from hub.ops.keys import UnitKeyStore
from hub.ops.metrics import CONTENT_TYPE, MetricsSnapshot, render_metrics
from hub.ops.receipts import receipt_for
from hub.ops.settings import OpsSettings
from hub.ops.views import (
    AlertView,
    BacklogView,
    DeliveryPage,
    OpsQueries,
    SummaryView,
    delivery_view,
)
from hub.problems import FieldErrorBody, Problem, Refusal
from hub.settings import Settings
from hub.store.repository import Store
from producers.sdk import FieldError, field_errors
from topics.codec import WireModel
from topics.identifiers import HsaId
from topics.messages import Receipt, ReceiptChannel
from topics.topics import TopicName

__all__ = [
    "FieldErrorBody",
    "Problem",
    "ReceiptAnswer",
    "ReceiptPublisher",
    "ReceiptRequest",
    "build_api",
    "get_clock",
    "get_dead_letters",
    "get_directory",
    "get_publisher",
    "get_settings",
    "get_store",
    "get_unit_keys",
]

log = get_logger(__name__)

_HERE: Final = Path(__file__).resolve().parent
_TEMPLATES: Final = _HERE / "templates"
_STATIC: Final = {
    "dashboard.js": ("text/javascript; charset=utf-8", _HERE / "static" / "dashboard.js"),
    "ops.css": ("text/css; charset=utf-8", _HERE / "static" / "ops.css"),
}
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_HEALTH_TIMEOUT_S: Final = 2.0
_RETRY_AFTER_S: Final = "5"
_CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
Language = Literal["sv", "en"]


# --- ports and bodies --------------------------------------------------------------------------


class ReceiptPublisher(Protocol):
    """Where receipts go: ``hub.publishing.Outbox`` (returns once the broker acknowledged)."""

    async def send(self, topic: TopicName, record: WireModel, key: str) -> object: ...


class ReceiptRequest(BaseModel):
    """A unit's receipt (*kvittens*) of one of its deliveries, by a named staff member."""

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    delivery_id: UUID
    receipted_by: HsaId


class ReceiptAnswer(BaseModel):
    """What happened to a receipt: published now (``accepted``) or stored before."""

    model_config = ConfigDict(frozen=True)

    status: Literal["accepted", "already_receipted"]
    delivery_id: UUID
    receipt_id: UUID | None
    receipted_at: datetime | None


class Health(BaseModel):
    """Whether the ops app can read its store."""

    model_config = ConfigDict(frozen=True)

    status: Literal["ok", "unavailable"]
    store: Literal["reachable", "unreachable"]


_Refusal = Refusal


# --- dependencies ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Context:
    settings: Settings
    store: Store
    publisher: ReceiptPublisher
    directory: DirectoryHistory
    clock: Clock
    unit_keys: UnitKeyStore
    options: OpsSettings
    dead_letters: DeadLetterCounter | None
    pages: Environment
    static: Mapping[str, tuple[str, bytes]]


def _context(request: Request) -> _Context:
    context: _Context = request.app.state.ops
    return context


_Ctx = Annotated[_Context, Depends(_context)]


def get_store(context: _Ctx) -> Store:
    """The store (override in tests)."""
    return context.store


def get_clock(context: _Ctx) -> Clock:
    """The clock (override in tests with a ``FixedClock``)."""
    return context.clock


def get_settings(context: _Ctx) -> Settings:
    """The hub's settings."""
    return context.settings


def get_directory(context: _Ctx) -> Directory:
    """The current directory version (reloads are picked up per request)."""
    return context.directory.current


def get_unit_keys(context: _Ctx) -> UnitKeyStore:
    """The per-unit keys of the recipient API."""
    return context.unit_keys


def get_publisher(context: _Ctx) -> ReceiptPublisher:
    """Where receipts are published (the outbox)."""
    return context.publisher


def get_dead_letters(context: _Ctx) -> DeadLetterCounter | None:
    """What counts dead letters for ``/metrics`` (None: not reported)."""
    return context.dead_letters


_StoreDep = Annotated[Store, Depends(get_store)]
_ClockDep = Annotated[Clock, Depends(get_clock)]
_SettingsDep = Annotated[Settings, Depends(get_settings)]
_DirectoryDep = Annotated[Directory, Depends(get_directory)]
_KeysDep = Annotated[UnitKeyStore, Depends(get_unit_keys)]
_PublisherDep = Annotated[ReceiptPublisher, Depends(get_publisher)]
_DeadLettersDep = Annotated[DeadLetterCounter | None, Depends(get_dead_letters)]

_BEARER: Final = HTTPBearer(auto_error=False, description="The recipient unit's API key.")
_Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)]


def _unit_of_key(hsa_id: str, credentials: _Credentials, keys: _KeysDep) -> str:
    """The unit of the presented key, which must be the unit in the path."""
    who = keys.authenticate(credentials.credentials if credentials is not None else None)
    if who is None:
        raise _Refusal(
            HTTPStatus.UNAUTHORIZED,
            "missing or unknown key: send the unit's key as 'Authorization: Bearer <key>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if who.unit != hsa_id:
        log.warning("ops.other_unit_refused", key_unit=who.unit, key_label=who.label)
        raise _Refusal(HTTPStatus.FORBIDDEN, "hsa_id: this key belongs to another unit")
    return who.unit


_Unit = Annotated[str, Depends(_unit_of_key)]


# --- helpers -----------------------------------------------------------------------------------


def _age_text(minutes: int | None, language: Language, none: str) -> str:
    return none if minutes is None else format_age(timedelta(minutes=minutes), language)


def _share_text(part: int, total: int, none: str) -> str:
    # Half up, as the page's JavaScript rounds (Math.floor(x + 0.5)).
    return none if not total else f"{(200 * part + total) // (2 * total)} %"


def _local_time(instant: datetime) -> str:
    return instant.astimezone(STOCKHOLM).strftime("%Y-%m-%d %H:%M:%S")


def _language(requested: str | None, default: Language) -> Language:
    return "en" if requested == "en" else "sv" if requested == "sv" else default


def _root(request: Request) -> str:
    return str(request.scope.get("root_path", "")).rstrip("/")


def _environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(_TEMPLATES),
        autoescape=select_autoescape(enabled_extensions=("html.j2",), default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
    )


def _wording(pages: Environment, language: Language) -> Any:
    return pages.get_template(f"_wording.{language}.j2").module


def _parse_link(target: str, exp: str | None, sig: str | None) -> tuple[UUID, int, str] | None:
    if exp is None or sig is None or not exp.isascii() or not exp.isdigit() or len(exp) > 12:
        return None
    try:
        return UUID(target), int(exp), sig
    except ValueError:
        return None


def _link_error(
    secret: bytes, action: LinkAction, parsed: tuple[UUID, int, str] | None, now: datetime
) -> Literal["invalid", "expired"] | None:
    """Why a link is refused, or None when it is good."""
    if parsed is None:
        return "invalid"
    target, expires, signature = parsed
    try:
        verify(secret, action=action, target=target, expires=expires, signature=signature, now=now)
    except InvalidLink:
        # Refused; it is "expired" when the same link was good at its expiry instant.
        try:
            verify(
                secret,
                action=action,
                target=target,
                expires=expires,
                signature=signature,
                now=datetime.fromtimestamp(expires, UTC),
            )
        except InvalidLink:
            return "invalid"
        return "expired"
    return None


# --- recipient API -----------------------------------------------------------------------------


def _recipient_routes() -> APIRouter:
    routes = APIRouter(tags=["recipient"])

    @routes.get(
        "/v1/units/{hsa_id}/deliveries",
        response_model=DeliveryPage,
        responses={401: {"model": Problem}, 403: {"model": Problem}, 422: {"model": Problem}},
    )
    async def unit_deliveries(
        *,
        unit: _Unit,
        store: _StoreDep,
        context: _Ctx,
        since: Annotated[AwareDatetime | None, Query()] = None,
        after: Annotated[UUID | None, Query()] = None,
        limit: Annotated[int, Query(ge=1, le=5000)] = 100,
        only_unreceipted: Annotated[bool, Query()] = False,
    ) -> DeliveryPage:
        """The unit's own deliveries with ``routed_at >= since``, oldest first, paged.

        ``limit`` is capped at ``OpsSettings.max_page_size``. A full page has ``next_since``
        and ``next_after``; pass both to get the rows after it.
        """
        if after is not None and since is None:
            raise _Refusal(
                HTTPStatus.UNPROCESSABLE_ENTITY,
                "after: needs since (pass next_since and next_after of the previous page)",
                errors=[FieldError("query.after", "missing_since", "requires query.since")],
            )
        size = min(limit, context.options.max_page_size)
        rows = await store.deliveries_for_unit(
            unit, since or _EPOCH, after=after, limit=size, only_unreceipted=only_unreceipted
        )
        last = rows[-1] if len(rows) == size else None
        return DeliveryPage(
            unit=unit,
            deliveries=[delivery_view(row) for row in rows],
            next_since=last.routed_at if last else None,
            next_after=last.delivery_id if last else None,
        )

    @routes.post(
        "/v1/units/{hsa_id}/receipts",
        response_model=ReceiptAnswer,
        status_code=HTTPStatus.ACCEPTED,
        responses={
            200: {"model": ReceiptAnswer, "description": "Already receipted: nothing published."},
            401: {"model": Problem},
            403: {"model": Problem},
            404: {"model": Problem},
            422: {"model": Problem},
            503: {"model": Problem},
        },
    )
    async def post_receipt(
        *,
        unit: _Unit,
        body: ReceiptRequest,
        store: _StoreDep,
        clock: _ClockDep,
        publisher: _PublisherDep,
        context: _Ctx,
    ) -> Response:
        """Receipt one of the unit's deliveries: 202 once the receipt is on the receipts topic."""
        delivery = await store.delivery(body.delivery_id)
        if delivery is None:
            raise _Refusal(HTTPStatus.NOT_FOUND, "delivery_id: no such delivery")
        if delivery.recipient != unit:
            log.warning("ops.other_unit_receipt_refused", unit=unit)
            raise _Refusal(HTTPStatus.FORBIDDEN, "delivery_id: the delivery is another unit's")
        if delivery.receipted_at is not None:
            answer = ReceiptAnswer(
                status="already_receipted",
                delivery_id=delivery.delivery_id,
                receipt_id=delivery.receipt_id,
                receipted_at=delivery.receipted_at,
            )
            return JSONResponse(answer.model_dump(mode="json"), status_code=HTTPStatus.OK)
        receipt = receipt_for(
            delivery.delivery_id, unit, ReceiptChannel.HTTP, body.receipted_by, clock.now()
        )
        if not await _published(publisher, receipt, context.options.publish_timeout_s):
            raise _Refusal(
                HTTPStatus.SERVICE_UNAVAILABLE,
                "the message broker is unavailable; retry later (the retry is idempotent)",
                headers={"Retry-After": _RETRY_AFTER_S},
            )
        answer = ReceiptAnswer(
            status="accepted",
            delivery_id=receipt.delivery_id,
            receipt_id=receipt.receipt_id,
            receipted_at=receipt.receipted_at,
        )
        return JSONResponse(answer.model_dump(mode="json"), status_code=HTTPStatus.ACCEPTED)

    return routes


async def _published(publisher: ReceiptPublisher, receipt: Receipt, timeout_s: float) -> bool:
    """Publish a receipt keyed by its unit; False when the broker did not take it in time."""
    try:
        async with asyncio.timeout(timeout_s):
            await publisher.send(TopicName.RECEIPTS, receipt, receipt.unit)
    except (KafkaError, TimeoutError, OSError) as exc:
        log.warning("ops.receipt_publish_failed", error_class=type(exc).__name__)
        return False
    log.info(
        "ops.receipt_published",
        delivery_id=str(receipt.delivery_id),
        receipt_id=str(receipt.receipt_id),
        unit=receipt.unit,
        channel=receipt.channel.value,
    )
    return True


# --- signed links ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _LinkPages:
    """Renders the small page a signed link answers, in one language."""

    pages: Environment
    language: Language
    root: str

    @property
    def w(self) -> Any:
        return _wording(self.pages, self.language)

    def page(
        self,
        status: HTTPStatus,
        *,
        heading: str,
        text: str,
        unit_name: str | None = None,
        count: int | None = None,
    ) -> HTMLResponse:
        html = self.pages.get_template("link.html.j2").render(
            w=self.w,
            root=self.root,
            outcome="ok" if status < HTTPStatus.BAD_REQUEST else "error",
            heading=heading,
            text=text,
            unit_name=unit_name,
            count=count,
        )
        return HTMLResponse(html, status_code=status.value)

    def refused(self, why: Literal["invalid", "expired"]) -> HTMLResponse:
        log.info("ops.link_refused", why=why)
        expired = why == "expired"
        return self.page(
            HTTPStatus.GONE if expired else HTTPStatus.FORBIDDEN,
            heading=self.w.invalid_title,
            text=self.w.expired_text if expired else self.w.invalid_text,
        )

    def unknown(self) -> HTMLResponse:
        return self.page(
            HTTPStatus.NOT_FOUND, heading=self.w.invalid_title, text=self.w.unknown_text
        )

    def unavailable(self) -> HTMLResponse:
        return self.page(
            HTTPStatus.SERVICE_UNAVAILABLE,
            heading=self.w.unavailable_title,
            text=self.w.unavailable_text,
        )


def _link_pages(request: Request, context: _Ctx, settings: _SettingsDep) -> _LinkPages:
    lang = request.query_params.get("lang")
    return _LinkPages(context.pages, _language(lang, settings.language), _root(request))


_Pages = Annotated[_LinkPages, Depends(_link_pages)]


def _link_routes() -> APIRouter:
    routes = APIRouter(tags=["links"])

    @routes.get(f"/l/{LinkAction.RECEIPT.value}/{{delivery_id}}", response_class=HTMLResponse)
    async def receipt_link(
        *,
        delivery_id: str,
        store: _StoreDep,
        clock: _ClockDep,
        settings: _SettingsDep,
        directory: _DirectoryDep,
        publisher: _PublisherDep,
        context: _Ctx,
        pages: _Pages,
        exp: str | None = None,
        sig: str | None = None,
    ) -> HTMLResponse:
        """One-click receipt (*kvittera*) of a delivery from a signed link.

        ``receipted_by`` is the recipient unit's own HSA-id: the link cannot tell who clicked.
        A delivery already receipted (by any channel) answers "already receipted" and
        publishes nothing; otherwise the receipt (id derived from the delivery and the
        channel, so a repeat is the same receipt) is published before "receipted" is shown.
        """
        now = clock.now()
        parsed = _parse_link(delivery_id, exp, sig)
        secret = settings.link_secret.get_secret_value().encode()
        why = _link_error(secret, LinkAction.RECEIPT, parsed, now)
        if why is not None or parsed is None:
            return pages.refused(why or "invalid")
        delivery = await store.delivery(parsed[0])
        if delivery is None:
            return pages.unknown()
        unit = directory.unit(delivery.recipient)
        unit_name = unit.name if unit else delivery.recipient
        w = pages.w
        if delivery.receipted_at is not None:
            return pages.page(
                HTTPStatus.OK,
                heading=w.already_receipted_title,
                text=w.already_receipted_text,
                unit_name=unit_name,
            )
        receipt = receipt_for(
            delivery.delivery_id, delivery.recipient, ReceiptChannel.LINK, delivery.recipient, now
        )
        if not await _published(publisher, receipt, context.options.publish_timeout_s):
            return pages.unavailable()
        return pages.page(
            HTTPStatus.OK, heading=w.receipted_title, text=w.receipted_text, unit_name=unit_name
        )

    @routes.get(f"/l/{LinkAction.ACKNOWLEDGE.value}/{{escalation_id}}", response_class=HTMLResponse)
    async def acknowledge_link(
        *,
        escalation_id: str,
        store: _StoreDep,
        clock: _ClockDep,
        settings: _SettingsDep,
        directory: _DirectoryDep,
        pages: _Pages,
        exp: str | None = None,
        sig: str | None = None,
    ) -> HTMLResponse:
        """On-call staff acknowledge (*bekräfta*) an escalation digest from a signed link.

        Stops further levels for the digest's deliveries that are still unreceipted; they
        still count as unreceipted. Acknowledging again is harmless.
        """
        now = clock.now()
        parsed = _parse_link(escalation_id, exp, sig)
        secret = settings.link_secret.get_secret_value().encode()
        why = _link_error(secret, LinkAction.ACKNOWLEDGE, parsed, now)
        if why is not None or parsed is None:
            return pages.refused(why or "invalid")
        escalation = await store.escalation(parsed[0])
        if escalation is None:
            return pages.unknown()
        acknowledged = await store.acknowledge(escalation.escalation_id, now)
        log.info(
            "ops.escalation_acknowledged",
            escalation_id=str(escalation.escalation_id),
            unit=escalation.unit,
            level=escalation.level,
            deliveries=acknowledged,
        )
        unit = directory.unit(escalation.unit)
        w = pages.w
        return pages.page(
            HTTPStatus.OK,
            heading=w.acknowledged_title,
            text=w.acknowledged_text if acknowledged else w.already_acknowledged_text,
            unit_name=unit.name if unit else escalation.unit,
            count=acknowledged or None,
        )

    return routes


# --- ops API, metrics, health and the dashboard ------------------------------------------------


def _ops_routes() -> APIRouter:
    routes = APIRouter(tags=["ops"])

    @routes.get("/v1/ops/backlog", response_model=BacklogView)
    async def ops_backlog(
        *,
        store: _StoreDep,
        clock: _ClockDep,
        directory: _DirectoryDep,
        include_empty: Annotated[bool, Query()] = True,
    ) -> BacklogView:
        """Per recipient unit: unreceipted count, weekday/weekend split, oldest age."""
        return await OpsQueries(store).backlog(clock.now(), directory, include_empty=include_empty)

    @routes.get("/v1/ops/alerts", response_model=list[AlertView])
    async def ops_alerts(store: _StoreDep) -> list[AlertView]:
        """Open ops alerts, oldest first."""
        return await OpsQueries(store).alerts()

    @routes.get("/v1/ops/summary", response_model=SummaryView)
    async def ops_summary(
        store: _StoreDep, clock: _ClockDep, directory: _DirectoryDep
    ) -> SummaryView:
        """Totals, overdue deliveries by escalation level, open alerts by severity."""
        return await OpsQueries(store).summary(clock.now(), directory)

    @routes.get("/metrics", response_class=Response)
    async def metrics(
        *,
        store: _StoreDep,
        clock: _ClockDep,
        directory: _DirectoryDep,
        dead_letters: _DeadLettersDep,
    ) -> Response:
        """Prometheus metrics: backlog per unit, oldest age, overdue by level, alerts, DLQ."""
        overview = await OpsQueries(store).overview(clock.now(), directory)
        snapshot = MetricsSnapshot(
            backlog=overview.backlog,
            summary=overview.summary,
            alerts=overview.alerts,
            dead_letters=await dead_letters.count() if dead_letters is not None else None,
        )
        return Response(render_metrics(snapshot), media_type=CONTENT_TYPE)

    @routes.get("/health", response_model=Health)
    async def health(store: _StoreDep) -> JSONResponse:
        """200 when the store answers within two seconds, else 503."""
        try:
            async with asyncio.timeout(_HEALTH_TIMEOUT_S):
                await store.count_open()
        except (TimeoutError, OSError) as exc:
            log.warning("ops.health_failed", error_class=type(exc).__name__)
            body = Health(status="unavailable", store="unreachable")
            return JSONResponse(body.model_dump(), status_code=HTTPStatus.SERVICE_UNAVAILABLE)
        return JSONResponse(Health(status="ok", store="reachable").model_dump())

    return routes


def _dashboard_routes() -> APIRouter:
    routes = APIRouter(tags=["dashboard"])

    @routes.get("/", response_class=HTMLResponse)
    async def dashboard(
        *,
        request: Request,
        store: _StoreDep,
        clock: _ClockDep,
        settings: _SettingsDep,
        directory: _DirectoryDep,
        context: _Ctx,
        lang: str | None = None,
    ) -> HTMLResponse:
        """The live dashboard (Swedish; ``?lang=en`` for English)."""
        language = _language(lang, settings.language)
        w = _wording(context.pages, language)
        overview = await OpsQueries(store).overview(clock.now(), directory)
        html = context.pages.get_template("dashboard.html.j2").render(
            w=w,
            lang=language,
            other_lang="en" if language == "sv" else "sv",
            root=_root(request),
            poll_ms=int(context.options.dashboard_poll_s * 1000),
            backlog=overview.backlog,
            summary=overview.summary,
            alerts=overview.alerts,
            age=lambda minutes: _age_text(minutes, language, w.dash),
            share=lambda part, total: _share_text(part, total, w.dash),
            local_time=_local_time,
            kind_name=lambda kind: w.kinds.get(kind, kind) if kind else w.dash,
        )
        return HTMLResponse(html)

    @routes.get("/static/{name}", include_in_schema=False)
    async def static_file(name: str, context: _Ctx) -> Response:
        found = context.static.get(name)
        if found is None:
            return Response(status_code=HTTPStatus.NOT_FOUND)
        media_type, content = found
        return Response(content, media_type=media_type, headers={"Cache-Control": "no-cache"})

    return routes


# --- the app -----------------------------------------------------------------------------------


async def _refused(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, _Refusal)  # noqa: S101 - registered for this class only
    log.info("ops.refused", status=exc.status.value, detail=exc.detail)
    return exc.response()


async def _request_invalid(_request: Request, exc: Exception) -> Response:
    # Replaces FastAPI's handler, whose body repeats the offending input.
    assert isinstance(exc, RequestValidationError)  # noqa: S101 - registered for it only
    return _Refusal(
        HTTPStatus.UNPROCESSABLE_ENTITY,
        "the request breaks the API",
        errors=field_errors(exc.errors()),
    ).response()


async def _security_headers(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    response = await call_next(request)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    # Links carry their signature in the query: never let it leak in a Referer header.
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    response.headers.setdefault("Content-Security-Policy", _CSP)
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Cache-Control", "no-store")
    return response


def build_api(
    settings: Settings,
    store: Store,
    outbox: ReceiptPublisher,
    directory: DirectoryHistory,
    clock: Clock,
    unit_keys: UnitKeyStore,
    *,
    options: OpsSettings | None = None,
    dead_letters: DeadLetterCounter | None = None,
) -> FastAPI:
    """The ops app over one store and one outbox (see the module docstring).

    ``outbox`` is where receipts from HTTP and links are published (``hub.publishing.Outbox``);
    ``directory`` is read per request, so reloads show; ``options`` default to
    ``OpsSettings()``; ``dead_letters`` (e.g. ``KafkaDeadLetterCounter``) feeds ``/metrics``.
    Nothing runs at build time but reading two small static files and the templates' loader.
    """
    app = FastAPI(
        title="Discharge hub – recipient and ops API",
        version="1",
        description=(__doc__ or "").split("\n\n", 1)[0],
    )
    app.state.ops = _Context(
        settings=settings,
        store=store,
        publisher=outbox,
        directory=directory,
        clock=clock,
        unit_keys=unit_keys,
        options=options or OpsSettings(),
        dead_letters=dead_letters,
        pages=_environment(),
        static={name: (kind, path.read_bytes()) for name, (kind, path) in _STATIC.items()},
    )
    app.add_exception_handler(_Refusal, _refused)
    app.add_exception_handler(RequestValidationError, _request_invalid)
    app.middleware("http")(_security_headers)
    for routes in (_recipient_routes(), _link_routes(), _ops_routes(), _dashboard_routes()):
        app.include_router(routes)
    return app
