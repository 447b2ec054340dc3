"""Deterministic task flows: decision trees written as YAML data, run one customer message at a time.

    specs = demo_flows()                                  # or load_dir(Path("my_flows"))
    engine = FlowEngine(specs, orders, clock=lambda: datetime.now(UTC))
    name = detect_flow("耳机收到8天了想退")                  # → "return_exchange"
    turn = engine.start(name, conversation_id, text)      # turn.text, turn.outcome, turn.state
    turn = engine.advance(FlowState.from_json(stored), next_text)

The engine decides every branch that moves money or changes an order; a model may at most rephrase
the messages it returns.
"""

from kefu.flows.engine import FlowEngine, idempotency_key
from kefu.flows.intents import detect_flow
from kefu.flows.spec import FlowSpec, demo_flows, load_dir, load_flow, load_flows, parse_flow
from kefu.flows.state import FlowMessage, FlowState, FlowTurn, Outcome

__all__ = [
    "FlowEngine",
    "FlowMessage",
    "FlowSpec",
    "FlowState",
    "FlowTurn",
    "Outcome",
    "demo_flows",
    "detect_flow",
    "idempotency_key",
    "load_dir",
    "load_flow",
    "load_flows",
    "parse_flow",
]
