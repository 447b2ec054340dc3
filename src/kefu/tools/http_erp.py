"""``HttpOrderSystem``: the ``OrderSystem`` seam over the demo ERP's REST API (httpx, synchronous).

Connection failures, dropped connections and 5xx answers are retried with exponential backoff —
safe, because every write carries its idempotency key and the ERP replays the stored result. A
timeout is not retried (the ERP is slow; the customer should not wait three times as long): it
becomes ``ToolUnavailable`` at once. 404 → ``NotFound``, 401/403 → ``ToolAuthFailed``, 429 (too many
wrong phone digits for the order) → ``TooManyAttempts``, other 4xx (409 state conflicts, 422 unusable
requests) → ``ToolRejected`` carrying the ERP's reason.

With a ``breaker`` (``kefu.breakers``; named "erp" for the order system, "credit" for the credit API) a
call that ends unreachable, timed out or 5xx counts against it; while it is open calls fail at once
with ``ToolUnavailable`` — the flows' existing "system unavailable → offer a human" path — instead of
waiting out the timeout and retries. Any answer below 500 (404, 409, 429 …) is the service working.
"""

from __future__ import annotations

import time
from typing import Any, Self
from urllib.parse import quote

import httpx

from kefu.breakers import BreakerOpen, CircuitBreaker
from kefu.tools.orders import Order, ReturnOrder, ToolUnavailable
from kefu.tools.wire import Json, order_from_wire, raise_for_outcome, return_from_wire

HUMAN = "try again later or offer the customer a human agent"


class JsonHttp:
    """Bearer-authenticated JSON calls to one service, with retries and the seam's error mapping."""

    def __init__(
        self,
        base_url: str,
        token: str,
        timeout: float = 5.0,
        retries: int = 2,
        *,
        backoff: float = 0.2,
        transport: httpx.BaseTransport | None = None,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout, self.retries, self.backoff = timeout, retries, backoff
        self.breaker = breaker
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        self._client = httpx.Client(
            base_url=self.base_url, timeout=timeout, headers=headers, transport=transport
        )

    def close(self) -> None:
        self._client.close()

    def call(
        self, method: str, path: str, *, subject: str, json: Json | None = None, key: str | None = None
    ) -> Json:
        """The JSON body of a successful answer; errors raised as the seam's exceptions."""
        headers = {"Idempotency-Key": key} if key is not None else {}
        response = self._guarded(method, path, json, headers)
        body = _body(response)
        raise_for_outcome(response.status_code, body, subject=subject, where=self.base_url)
        if not isinstance(body, dict):
            raise ToolUnavailable(f"the service at {self.base_url} answered {path} with non-JSON; {HUMAN}")
        return body

    def _guarded(self, method: str, path: str, json: Json | None, headers: dict[str, str]) -> httpx.Response:
        """``_send`` through the breaker: at once ``ToolUnavailable`` while it is open."""
        breaker = self.breaker
        if breaker is None:
            return self._send(method, path, json, headers)
        try:
            breaker.acquire()
        except BreakerOpen as exc:
            raise ToolUnavailable(f"{exc.message}; {HUMAN}") from None
        try:
            response = self._send(method, path, json, headers)
        except ToolUnavailable as exc:
            breaker.failure(exc.message.removesuffix(f"; {HUMAN}"))
            raise
        except BaseException:
            breaker.release()
            raise
        if response.status_code >= 500:
            breaker.failure(f"the service at {self.base_url} answered HTTP {response.status_code}")
        else:
            breaker.success()
        return response

    def _send(self, method: str, path: str, json: Json | None, headers: dict[str, str]) -> httpx.Response:
        failure = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                response = self._client.request(method, path, json=json, headers=headers)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                failure = f"cannot connect: {exc or type(exc).__name__}"
                continue
            except httpx.TimeoutException:
                raise ToolUnavailable(
                    f"the service at {self.base_url} did not answer within {self.timeout:g} s; {HUMAN}"
                ) from None
            except httpx.TransportError as exc:
                failure = f"{type(exc).__name__}: {exc}"
                continue
            if response.status_code < 500 or attempt == self.retries:
                return response
            failure = f"HTTP {response.status_code}"
        raise ToolUnavailable(
            f"the service at {self.base_url} is not reachable ({failure}) after {self.retries + 1} "
            f"attempts; {HUMAN}"
        )


def _body(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text


def _order_path(order_id: str, action: str = "") -> str:
    path = f"/orders/{quote(order_id, safe='')}"  # tau2 ids start with "#"
    return f"{path}/{action}" if action else path


class JsonService:
    """Base of the HTTP adapters: one ``JsonHttp`` client. Close it (or use ``with``) to release it."""

    def __init__(
        self,
        base_url: str,
        token: str,
        timeout: float = 5.0,
        retries: int = 2,
        *,
        backoff: float = 0.2,
        transport: httpx.BaseTransport | None = None,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self._http = JsonHttp(
            base_url, token, timeout, retries, backoff=backoff, transport=transport, breaker=breaker
        )

    @property
    def breaker(self) -> CircuitBreaker | None:
        return self._http.breaker

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class HttpOrderSystem(JsonService):
    """``OrderSystem`` over HTTP."""

    def get_order(self, order_id: str) -> Order:
        return order_from_wire(self._http.call("GET", _order_path(order_id), subject=f"order {order_id}"))

    def verify_customer(self, order_id: str, phone_last4: str) -> bool:
        body = self._http.call(
            "POST",
            _order_path(order_id, "verify"),
            subject=f"order {order_id}",
            json={"phone_last4": phone_last4},
        )
        return body.get("verified") is True

    def create_return(
        self, order_id: str, *, kind: str, reason: str, photos: list[str], idempotency_key: str
    ) -> ReturnOrder:
        payload = {"kind": kind, "reason": reason, "photos": list(photos)}
        body = self._write(order_id, "returns", payload, idempotency_key)
        return return_from_wire(body)

    def cancel_order(self, order_id: str, *, idempotency_key: str) -> Order:
        return order_from_wire(self._write(order_id, "cancel", {}, idempotency_key))

    def change_address(self, order_id: str, address: str, *, idempotency_key: str) -> Order:
        return order_from_wire(self._write(order_id, "address", {"address": address}, idempotency_key))

    def modify_items(
        self,
        order_id: str,
        *,
        skus: list[str],
        new_skus: list[str],
        payment_method_id: str,
        idempotency_key: str,
    ) -> Order:
        payload = {"skus": list(skus), "new_skus": list(new_skus), "payment_method_id": payment_method_id}
        return order_from_wire(self._write(order_id, "items", payload, idempotency_key))

    def request_invoice(
        self, order_id: str, *, kind: str, title: str, tax_id: str | None, idempotency_key: str
    ) -> str:
        payload = {"kind": kind, "title": title, "tax_id": tax_id}
        return str(self._write(order_id, "invoices", payload, idempotency_key)["invoice_request_id"])

    def _write(self, order_id: str, action: str, payload: Json, key: str) -> Json:
        path = _order_path(order_id, action)
        return self._http.call("POST", path, subject=f"order {order_id}", json=payload, key=key)
