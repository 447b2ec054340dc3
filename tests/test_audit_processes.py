"""Several processes appending at once still form one chain (the lock lives in the database)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import kefu
from kefu.audit import AuditLog, Keyring, verify
from kefu.storage.engine import make_engine

POSTGRES_URL = os.environ.get("KEFU_TEST_POSTGRES_URL")
PROCESSES, APPENDS = 3, 20

CHILD = """
import os, sys
from kefu.audit import AuditLog, Keyring
from kefu.storage.engine import make_engine
engine = make_engine(os.environ["AUDIT_TEST_URL"])
log = AuditLog(engine, Keyring.from_env_value(os.environ["AUDIT_TEST_KEYS"]))
sys.stdin.readline()  # start together
for i in range(int(os.environ["AUDIT_TEST_N"])):
    log.append("tool_call", {"pid": os.getpid(), "i": i})
engine.dispose()
"""


def test_concurrent_processes_form_one_chain(database_url: str) -> None:
    keyring = Keyring.generate("k1")
    src = str(Path(kefu.__file__).resolve().parents[1])
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]),
        "AUDIT_TEST_URL": database_url,
        "AUDIT_TEST_KEYS": keyring.to_env_value(),
        "AUDIT_TEST_N": str(APPENDS),
    }
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD], env=env, stdin=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in range(PROCESSES)
    ]
    for child in children:
        assert child.stdin is not None
        child.stdin.write(b"go\n")
        child.stdin.flush()
    outcomes = [child.communicate(timeout=300) for child in children]

    assert [child.returncode for child in children] == [0] * PROCESSES, [err.decode() for _, err in outcomes]
    engine = make_engine(database_url)
    report = verify(engine, keyring=keyring)
    pids = {AuditLog(engine, keyring).read(seq)["pid"] for seq in range(1, PROCESSES * APPENDS + 1)}
    engine.dispose()
    assert (report.ok, report.checked) == (True, PROCESSES * APPENDS)
    assert len(pids) == PROCESSES
