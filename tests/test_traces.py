"""OpenTelemetry traces (KEFU_OTLP_ENDPOINT): a real OTLP/HTTP receiver on loopback gets one trace per
turn — kefu.turn with its plan and reply spans and the first-text event — carrying the metrics' bounded
attributes and never the conversation id or any text."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from fastapi.testclient import TestClient

from conftest import MINI_KB, ask, new_conversation
from kefu.api.app import create_app
from kefu.config import Settings
from kefu.errors import ConfigError
from kefu.llm.testing import ScriptedModel

trace_service = pytest.importorskip(
    "opentelemetry.proto.collector.trace.v1.trace_service_pb2", reason="the otel extra is not installed"
)


class Receiver(ThreadingHTTPServer):
    bodies: list[bytes]


class Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.path == "/v1/traces":
            self.server.bodies.append(body)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver(("127.0.0.1", 0), Handler)
    server.bodies = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def spans_of(bodies: list[bytes]) -> list[object]:
    spans = []
    for body in bodies:
        request = trace_service.ExportTraceServiceRequest()
        request.ParseFromString(body)
        for resource in request.resource_spans:
            for scope in resource.scope_spans:
                spans.extend(scope.spans)
    return spans


def test_each_turn_is_one_trace_with_its_stages(
    make_settings: Callable[..., Settings], model: ScriptedModel, receiver: Receiver
) -> None:
    endpoint = f"http://127.0.0.1:{receiver.server_address[1]}"
    settings = make_settings(kb_dir=MINI_KB, otlp_endpoint=endpoint, version_label="canary")
    with TestClient(create_app(settings, model=model)) as client:
        conversation = new_conversation(client)
        model.enqueue("我们默认使用中通快递，江浙沪 1–2 天送达 [1]。")
        ask(client, conversation, "你们发什么快递？我的手机 13812345678")
        tracer = client.app.state.runtime.assistant.metrics.tracer  # type: ignore[attr-defined]
        tracer.flush()
    spans = spans_of(receiver.bodies)
    by_name = {span.name: span for span in spans}  # type: ignore[attr-defined]
    assert set(by_name) == {"kefu.turn", "kefu.turn.plan", "kefu.turn.reply"}
    turn, plan, reply = by_name["kefu.turn"], by_name["kefu.turn.plan"], by_name["kefu.turn.reply"]
    assert plan.parent_span_id == turn.span_id == reply.parent_span_id
    assert plan.trace_id == turn.trace_id == reply.trace_id
    assert turn.start_time_unix_nano == plan.start_time_unix_nano < plan.end_time_unix_nano
    assert (
        plan.end_time_unix_nano
        == reply.start_time_unix_nano
        <= reply.end_time_unix_nano
        == turn.end_time_unix_nano
    )
    attributes = {a.key: a.value for a in turn.attributes}
    assert attributes["kefu.answer_kind"].string_value == "grounded"
    assert attributes["kefu.channel"].string_value == "web"
    assert attributes["kefu.model"].string_value == ScriptedModel().describe()
    assert attributes["kefu.prompt_tokens"].int_value > 0
    assert [event.name for event in turn.events] == ["first_text"]
    raw = b"".join(receiver.bodies)
    for secret in (conversation, "13812345678", "中通", "快递"):
        assert secret.encode() not in raw
    assert b"canary" in raw  # the resource names the release


def test_no_endpoint_no_tracer(make_settings: Callable[..., Settings], model: ScriptedModel) -> None:
    with TestClient(create_app(make_settings(kb_dir=MINI_KB), model=model)) as client:
        assert client.app.state.runtime.assistant.metrics.tracer is None  # type: ignore[attr-defined]


def test_a_bad_endpoint_names_the_variable(make_settings: Callable[..., Settings]) -> None:
    with pytest.raises(ConfigError, match=r"otlp_endpoint|OTLP_ENDPOINT"):
        make_settings(otlp_endpoint="collector:4318")
