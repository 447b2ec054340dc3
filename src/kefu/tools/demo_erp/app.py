"""The demo ERP as a REST service (FastAPI) over its own SQLite file.

    GET  /health                                   no auth
    GET  /orders/{id}                              → Order
    POST /orders/{id}/verify   {phone_last4}       → {"verified": bool}
    POST /orders/{id}/returns  {kind, reason, photos}   → 201 ReturnOrder      ┐ writes: header
    POST /orders/{id}/cancel                       → Order                     │ Idempotency-Key;
    POST /orders/{id}/address  {address}           → Order                     │ a replay answers the
    POST /orders/{id}/items    {skus, new_skus, payment_method_id} → Order     │ stored result
    POST /orders/{id}/invoices {kind, title, tax_id}    → 201 {invoice_request_id, …} ┘
    POST /credit/check         {id_number, name}   → {approved, score, reason}

Every route but /health needs ``Authorization: Bearer <token>``. Errors are
``{"error": {"code", "message"}}``: 401 bad token, 404 unknown order, 409 the order's state forbids it
(shipped, cancelled, items already modified once — see ``rules.py``),
422 unusable request or a reused Idempotency-Key, 400 missing Idempotency-Key, 429 too many wrong
phone digits for this order recently (with ``Retry-After``; see ``store.VERIFY_MAX_FAILURES``). A
replayed write carries ``Idempotent-Replayed: true``. ``delay`` (seconds) slows every request, to test
timeouts. ``app.state.requests`` keeps the last 1,000 requests (method, path, status, Idempotency-Key):
the ERP's own record of what reached it.
"""

from __future__ import annotations

import asyncio
import secrets
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Header, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from kefu.api.errors import install_error_handlers
from kefu.errors import KefuError
from kefu.tools.credit import credit_to_wire, demo_credit_decision
from kefu.tools.demo_erp.seed import seed_demo
from kefu.tools.demo_erp.store import Clock, ErpStore, Outcome, utc_now
from kefu.tools.orders import TooManyAttempts
from kefu.tools.wire import Json, order_to_wire

DEFAULT_TOKEN = "demo-erp-token"


class Unauthorized(KefuError):
    code = "unauthorized"
    status = 401


class VerifyIn(BaseModel):
    phone_last4: str = Field(min_length=1, max_length=8)


class ReturnIn(BaseModel):
    kind: str = Field(max_length=20)
    reason: str = Field(max_length=2000)
    photos: list[str] = Field(default_factory=list, max_length=20)


class AddressIn(BaseModel):
    address: str = Field(max_length=500)


Sku = Annotated[str, Field(max_length=64)]


class ItemsIn(BaseModel):
    skus: list[Sku] = Field(max_length=50)  # the order lines to change, by item (sku)
    new_skus: list[Sku] = Field(max_length=50)  # what each becomes: an option of the same product
    payment_method_id: str = Field(max_length=100)  # pays or receives the price difference


class InvoiceIn(BaseModel):
    kind: str = Field(max_length=20)
    title: str = Field(max_length=200)
    tax_id: str | None = Field(default=None, max_length=40)


class CreditIn(BaseModel):
    id_number: str = Field(max_length=40)
    name: str = Field(max_length=100)


IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)]


def create_demo_erp_app(
    db_path: Path,
    token: str = DEFAULT_TOKEN,
    clock: Clock = utc_now,
    *,
    reseed: bool = False,
    delay: float = 0.0,
) -> FastAPI:
    """The demo ERP on ``db_path``. An empty store gets the demo shop's seed orders; ``reseed=True``
    wipes it and seeds afresh (dates relative to ``clock()``)."""
    store = ErpStore(db_path, clock)
    if reseed or store.count("orders") == 0:
        seed_demo(store)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        store.close()

    app = FastAPI(title="小铺优选 demo ERP", lifespan=lifespan)
    app.state.store = store
    install_error_handlers(app)
    if delay > 0:
        _add_delay(app, delay)
    _add_request_log(app)
    app.get("/health")(lambda: {"status": "ok"})
    app.include_router(_routes(store), dependencies=[Depends(_bearer(token))])
    return app


def _add_delay(app: FastAPI, delay: float) -> None:
    @app.middleware("http")
    async def slow(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        await asyncio.sleep(delay)
        return await call_next(request)


def _add_request_log(app: FastAPI) -> None:
    log: deque[Json] = deque(maxlen=1000)
    app.state.requests = log

    @app.middleware("http")
    async def record(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        entry = {"method": request.method, "path": request.url.path, "status": response.status_code}
        log.append(entry | {"idempotency_key": request.headers.get("idempotency-key")})
        return response


def _bearer(token: str) -> Callable[[str | None], None]:
    expected = f"Bearer {token}".encode()

    def check(authorization: Annotated[str | None, Header()] = None) -> None:
        if not secrets.compare_digest((authorization or "").encode(), expected):
            raise Unauthorized(
                "missing or wrong bearer token; send `Authorization: Bearer <token>` with the token "
                "this ERP was started with"
            )

    return check


def _answer(outcome: Outcome) -> JSONResponse:
    headers = {"Idempotent-Replayed": "true"} if outcome.replayed else None
    return JSONResponse(outcome.body, status_code=outcome.status, headers=headers)


def _routes(store: ErpStore) -> APIRouter:
    router = APIRouter()

    @router.get("/orders/{order_id}")
    def get_order(order_id: str) -> Json:
        return order_to_wire(store.get_order(order_id))

    @router.post("/orders/{order_id}/verify")
    def verify(order_id: str, body: VerifyIn) -> JSONResponse:
        try:
            return JSONResponse({"verified": store.verify_customer(order_id, body.phone_last4)})
        except TooManyAttempts as exc:
            headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else None
            return JSONResponse(exc.to_dict(), status_code=exc.status, headers=headers)

    @router.post("/orders/{order_id}/returns", status_code=201)
    def create_return(order_id: str, body: ReturnIn, key: IdempotencyKey = None) -> JSONResponse:
        outcome = store.create_return(
            order_id, kind=body.kind, reason=body.reason, photos=body.photos, idempotency_key=key or ""
        )
        return _answer(outcome)

    @router.post("/orders/{order_id}/cancel")
    def cancel(order_id: str, key: IdempotencyKey = None) -> JSONResponse:
        return _answer(store.cancel_order(order_id, idempotency_key=key or ""))

    @router.post("/orders/{order_id}/address")
    def address(order_id: str, body: AddressIn, key: IdempotencyKey = None) -> JSONResponse:
        return _answer(store.change_address(order_id, body.address, idempotency_key=key or ""))

    @router.post("/orders/{order_id}/items")
    def items(order_id: str, body: ItemsIn, key: IdempotencyKey = None) -> JSONResponse:
        outcome = store.modify_items(
            order_id,
            skus=body.skus,
            new_skus=body.new_skus,
            payment_method_id=body.payment_method_id,
            idempotency_key=key or "",
        )
        return _answer(outcome)

    @router.post("/orders/{order_id}/invoices", status_code=201)
    def invoice(order_id: str, body: InvoiceIn, key: IdempotencyKey = None) -> JSONResponse:
        outcome = store.request_invoice(
            order_id, kind=body.kind, title=body.title, tax_id=body.tax_id, idempotency_key=key or ""
        )
        return _answer(outcome)

    @router.post("/credit/check")
    def credit(body: CreditIn) -> dict[str, object]:
        return credit_to_wire(demo_credit_decision(body.id_number, body.name))

    return router


def run_demo_erp(
    db_path: Path,
    token: str = DEFAULT_TOKEN,
    host: str = "127.0.0.1",
    port: int = 8100,
    *,
    reseed: bool = True,
) -> None:
    """Serve the demo ERP (``kefu demo-erp``); by default re-seeded so relative dates hold today."""
    import uvicorn

    uvicorn.run(create_demo_erp_app(db_path, token, reseed=reseed), host=host, port=port, log_level="info")
