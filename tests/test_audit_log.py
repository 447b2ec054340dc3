"""Audit log contract on a real SQLite file and (with KEFU_TEST_POSTGRES_URL) real PostgreSQL:
round trip, tamper detection by raw SQL, encryption at rest, concurrency, retention, key rotation."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from kefu.audit import AuditDecryptError, AuditLog, Keyring, format_report, verify
from kefu.audit.crypto import GENESIS_HASH, record_hash
from kefu.audit.records import iter_records
from kefu.errors import InvalidInput, NotFound
from kefu.storage.engine import make_engine

POSTGRES_URL = os.environ.get("KEFU_TEST_POSTGRES_URL")
SENTENCE = "客户张三说：我的订单还没到，请帮我查一下物流。"


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def log(engine: Engine, keyring: Keyring) -> AuditLog:
    return AuditLog(engine, keyring)


class Clock:
    """A settable UTC clock for retention tests (no sleeping)."""

    def __init__(self) -> None:
        self.now = datetime(2025, 1, 1, 8, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def fill(log: AuditLog, n: int) -> None:
    for i in range(n):
        log.append("model_input", {"i": i, "text": f"第{i}条"}, conversation_id=f"c{i % 2}")


def execute(engine: Engine, sql: str, **params: object) -> None:
    with engine.begin() as conn:
        conn.execute(text(sql), params)


def test_round_trip_keeps_payload_and_metadata(log: AuditLog, engine: Engine) -> None:
    payload = {"messages": [{"role": "user", "content": SENTENCE}], "model": "qwen", "tokens": 12}

    first = log.append("model_input", payload, conversation_id="conv-1")
    second = log.append("handoff", {"to": "agent-7"}, conversation_id="conv-1", actor="admin:li")
    log.append("admin_action", {"action": "kb.reload"}, actor="admin:li")

    assert (first.seq, second.seq) == (1, 2)
    assert first.prev_hash == GENESIS_HASH
    assert second.prev_hash == first.hash
    assert first.created_at.utcoffset() == timedelta(0)
    assert log.read(1) == payload
    assert log.read(2) == {"to": "agent-7"}
    stored = log.get(2)
    assert (stored.kind, stored.actor, stored.conversation_id, stored.key_id) == (
        "handoff",
        "admin:li",
        "conv-1",
        "k1",
    )
    assert stored == second
    assert [r.seq for r in log.records(conversation_id="conv-1")] == [1, 2]
    assert [r.seq for r in log.records()] == [1, 2, 3]
    report = verify(engine, keyring=log.keyring)
    assert (report.ok, report.checked, report.first_broken, report.head_seq) == (True, 3, None, 3)
    assert report.head_hash == log.get(3).hash


def test_empty_or_missing_log_verifies(engine: Engine, keyring: Keyring) -> None:
    assert verify(engine).ok
    AuditLog(engine, keyring)
    report = verify(engine)
    assert (report.ok, report.checked) == (True, 0)
    assert format_report(report).startswith("audit log OK: no records to check")


def test_unknown_seq_is_not_found(log: AuditLog) -> None:
    with pytest.raises(NotFound, match="audit record 9 not found"):
        log.read(9)


def test_bad_metadata_and_payloads_are_refused(log: AuditLog) -> None:
    with pytest.raises(InvalidInput, match="audit kind must be 1-64 characters"):
        log.append("", {})
    with pytest.raises(InvalidInput, match="audit actor"):
        log.append("x", {}, actor="a" * 129)
    with pytest.raises(TypeError, match="JSON-serialisable"):
        log.append("x", {"when": datetime.now(UTC)})
    assert list(log.records()) == []


def test_one_flipped_ciphertext_byte_is_named(log: AuditLog, engine: Engine) -> None:
    fill(log, 6)
    tampered = bytearray(log.get(4).fields.ciphertext)
    tampered[3] ^= 0x01
    execute(engine, "UPDATE audit_log SET ciphertext = :c WHERE seq = 4", c=bytes(tampered))

    report = verify(engine)

    assert (report.ok, report.first_broken, report.checked) == (False, 4, 3)
    assert report.reason.startswith("hash mismatch: the record was edited")
    assert format_report(report).startswith("audit log BROKEN at seq 4: hash mismatch")
    with pytest.raises(AuditDecryptError, match="record 4 does not decrypt"):
        log.read(4)


def test_an_edited_kind_is_named(log: AuditLog, engine: Engine) -> None:
    fill(log, 5)
    execute(engine, "UPDATE audit_log SET kind = 'small_talk' WHERE seq = 2")

    report = verify(engine)

    assert (report.ok, report.first_broken) == (False, 2)
    assert "hash mismatch" in report.reason


def test_a_deleted_record_names_the_next_seq(log: AuditLog, engine: Engine) -> None:
    fill(log, 6)
    execute(engine, "DELETE FROM audit_log WHERE seq = 3")

    report = verify(engine)

    assert (report.ok, report.first_broken, report.checked) == (False, 4, 2)
    assert report.reason == "seq gap: expected seq 3, found 4 — record(s) 3..3 were deleted"


def test_swapped_seqs_are_detected(log: AuditLog, engine: Engine) -> None:
    fill(log, 6)
    with engine.begin() as conn:
        conn.execute(text("UPDATE audit_log SET seq = -1 WHERE seq = 3"))
        conn.execute(text("UPDATE audit_log SET seq = 3 WHERE seq = 4"))
        conn.execute(text("UPDATE audit_log SET seq = 4 WHERE seq = -1"))

    report = verify(engine)

    assert (report.ok, report.first_broken) == (False, 3)


def test_a_rechained_forgery_passes_hashes_but_not_the_keyed_check(log: AuditLog, engine: Engine) -> None:
    """Someone who knows the hash recipe but not the key rewrites kind and re-hashes the rest."""
    fill(log, 5)
    execute(engine, "UPDATE audit_log SET kind = 'forged' WHERE seq = 2")
    prev = log.get(1).hash
    for record in list(iter_records(engine, after_seq=1)):
        fields = record.fields.__class__(**{**vars(record.fields), "prev_hash": prev})
        prev = record_hash(fields)
        execute(
            engine,
            "UPDATE audit_log SET prev_hash = :p, hash = :h WHERE seq = :s",
            p=fields.prev_hash,
            h=prev,
            s=record.seq,
        )

    assert verify(engine).ok  # the limit of keyless checking
    keyed = verify(engine, keyring=log.keyring)
    assert (keyed.ok, keyed.first_broken) == (False, 2)
    assert "does not decrypt with key 'k1'" in keyed.reason


def test_a_wrong_key_fails_with_a_clear_error(log: AuditLog, engine: Engine) -> None:
    log.append("model_output", {"text": SENTENCE})
    impostor = AuditLog(engine, Keyring({"k1": os.urandom(32)}, "k1"))
    stranger = AuditLog(engine, Keyring.generate("k9"))

    with pytest.raises(AuditDecryptError) as wrong:
        impostor.read(1)
    with pytest.raises(AuditDecryptError) as missing:
        stranger.read(1)

    assert wrong.value.message.startswith(
        "audit record 1 does not decrypt with key 'k1': the key in KEFU_AUDIT_KEYS"
    )
    assert (
        "was encrypted with key 'k1', which is not in KEFU_AUDIT_KEYS (it has ['k9'])"
        in missing.value.message
    )
    assert verify(engine).ok  # hashes need no key
    assert verify(engine, keyring=impostor.keyring).first_broken == 1


def test_key_rotation_keeps_old_records_readable(engine: Engine, keyring: Keyring) -> None:
    AuditLog(engine, keyring).append("model_input", {"text": "旧密钥"})
    rotated = Keyring.from_env_value(keyring.with_new_active("k2").to_env_value())

    log = AuditLog(engine, rotated)
    new = log.append("model_input", {"text": "新密钥"})

    assert new.key_id == "k2"
    assert log.get(1).key_id == "k1"
    assert (log.read(1), log.read(2)) == ({"text": "旧密钥"}, {"text": "新密钥"})
    assert verify(engine, keyring=rotated).ok
    without_old = Keyring({"k2": rotated.active_key}, "k2")
    assert verify(engine, keyring=without_old).first_broken == 1


def test_timestamps_never_run_backwards(engine: Engine, keyring: Keyring) -> None:
    clock = Clock()
    log = AuditLog(engine, keyring, clock=clock)
    log.append("a", {})
    clock.now -= timedelta(minutes=5)  # e.g. an NTP step

    later = log.append("b", {})

    assert later.created_at == log.get(1).created_at
    assert verify(engine).ok


def test_four_threads_form_one_chain(log: AuditLog, engine: Engine) -> None:
    start = threading.Barrier(4)
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        start.wait()
        try:
            for i in range(50):
                log.append("tool_call", {"thread": n, "i": i}, conversation_id=f"t{n}")
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    report = verify(engine, keyring=log.keyring)
    assert (report.ok, report.checked, report.head_seq) == (True, 200, 200)
    for n in range(4):
        assert [log.decrypt(r)["i"] for r in log.records(conversation_id=f"t{n}")] == list(range(50))


def test_retention_purges_a_prefix_and_verify_continues_from_the_checkpoint(
    engine: Engine, keyring: Keyring
) -> None:
    clock = Clock()
    log = AuditLog(engine, keyring, clock=clock)
    fill(log, 5)
    clock.now += timedelta(days=10)
    fill(log, 3)
    clock.now += timedelta(days=2)

    result = log.purge_older_than(7)

    assert (result.purged, result.checkpoint_seq) == (5, 5)
    assert str(result) == "purged 5 audit records (through seq 5); the chain stays verifiable"
    report = verify(engine, keyring=keyring)
    assert (report.ok, report.checked, report.purged_through) == (True, 3, 5)
    assert "continuing from the retention checkpoint at seq 5" in format_report(report)
    with pytest.raises(NotFound):
        log.read(1)
    assert log.read(6) == {"i": 0, "text": "第0条"}
    assert log.purge_older_than(7).purged == 0


def test_purging_everything_then_appending_continues_the_chain(engine: Engine, keyring: Keyring) -> None:
    clock = Clock()
    log = AuditLog(engine, keyring, clock=clock)
    fill(log, 4)
    last_hash = log.get(4).hash
    clock.now += timedelta(days=30)

    assert log.purge_older_than(1).purged == 4
    assert verify(engine).ok
    after = log.append("model_input", {"text": "清理之后"})

    assert (after.seq, after.prev_hash) == (5, last_hash)
    report = verify(engine, keyring=keyring)
    assert (report.ok, report.checked, report.head_seq) == (True, 1, 5)


def test_tampering_after_a_purge_is_still_found(engine: Engine, keyring: Keyring) -> None:
    clock = Clock()
    log = AuditLog(engine, keyring, clock=clock)
    fill(log, 3)
    clock.now += timedelta(days=10)
    fill(log, 3)
    log.purge_older_than(5)
    execute(engine, "DELETE FROM audit_log WHERE seq = 4")

    report = verify(engine)

    assert (report.ok, report.first_broken) == (False, 5)
    assert "BROKEN at seq 5" in format_report(report)


def test_negative_retention_is_refused(log: AuditLog) -> None:
    with pytest.raises(InvalidInput, match="zero or more"):
        log.purge_older_than(-1)


def test_the_sqlite_file_never_holds_the_plaintext(tmp_path: Path, keyring: Keyring) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'audit.db'}")
    log = AuditLog(engine, keyring)
    log.append("model_output", {"reply": SENTENCE}, conversation_id="conv-zh")
    engine.dispose()

    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("audit.db"))

    assert b"model_output" in raw and b"conv-zh" in raw  # we are looking at the real rows
    assert SENTENCE.encode("utf-8") not in raw
    assert "物流".encode() not in raw
