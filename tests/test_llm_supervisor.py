"""The local model's supervision without the model: timeouts by backend, thread budget, exit reasons,
the worker's request parsing and readiness before a start. (The real worker: test_llm_local.py.)"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from kefu.config import Settings
from kefu.llm import model_readiness
from kefu.llm.local import default_threads
from kefu.llm.supervisor import WorkerConfig, WorkerSupervisor, describe_exit
from kefu.llm.testing import ScriptedModel
from kefu.llm.worker import parse_request


@pytest.mark.parametrize(("backend", "seconds"), [("local", 20.0), ("openai", 30.0), ("none", 30.0)])
def test_the_model_timeout_fits_the_backend_unless_set(backend: str, seconds: float) -> None:
    assert Settings(environment="test", llm=backend).llm_timeout == seconds
    assert Settings(environment="test", llm=backend, llm_timeout=7).llm_timeout == 7


def test_the_worker_defaults_leave_a_core_and_lower_its_priority() -> None:
    settings = Settings(environment="test")
    assert settings.local_threads == 0 and settings.local_nice == 10
    assert default_threads() == max(1, len(os.sched_getaffinity(0)) - 1)
    config = WorkerConfig.from_settings(Settings(environment="test", local_threads=3, local_nice=5))
    assert (config.threads, config.nice, config.label) == (3, 5, "qwen2.5-coder-0.5b-instruct-q4_k_m")


def test_exit_reasons_name_the_signal_or_the_code() -> None:
    assert describe_exit(-signal.SIGSEGV) == "was killed by signal SIGSEGV"
    assert describe_exit(-signal.SIGKILL) == "was killed by signal SIGKILL"
    assert describe_exit(3) == "exited with code 3"


def test_a_worker_never_started_is_not_ready_and_others_are() -> None:
    supervisor = WorkerSupervisor(WorkerConfig(None, Path("/nonexistent")))
    assert supervisor.readiness() == (False, "not started") and supervisor.pid is None
    assert model_readiness(None) == (True, "none (KEFU_LLM=none)")
    assert model_readiness(ScriptedModel()) == (True, "scripted")


def test_the_worker_reads_openai_chat_bodies_and_refuses_what_it_cannot_serve() -> None:
    request = parse_request(
        {"messages": [{"role": "user", "content": "你好"}], "max_tokens": 8, "temperature": 0, "stop": "。"}
    )
    assert (request.max_tokens, request.temperature, request.stop) == (8, 0.0, ["。"])
    assert request.messages[0].content == "你好"
    with pytest.raises(ValueError, match="role 'tool'"):
        parse_request({"messages": [{"role": "tool", "content": "x"}]})
    with pytest.raises(ValueError, match="no messages"):
        parse_request({"messages": []})
