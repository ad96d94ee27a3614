"""The usage journal: one line per record, torn tails skipped, watermark after commit."""

from __future__ import annotations

import multiprocessing
import os
import signal
from pathlib import Path

import pytest

from llmproxy.journal import FULL_FLAG, WATERMARK, JournalReader, JournalWriter, decode, encode, is_sealed, read_state
from llmproxy.model import Usage
from llmproxy.usage import UsageEvent, event_from_record


def records(n: int, start: int = 0) -> list[dict[str, object]]:
    return [{"request_id": f"r{i}", "tokens": i} for i in range(start, start + n)]


def test_journal_line_round_trips_and_refuses_a_flipped_byte() -> None:
    line = encode({"request_id": "abc", "n": 1})
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert decode(line[:-1]) == {"request_id": "abc", "n": 1}
    damaged = line[:-3] + (b"2" if line[-3:-2] != b"2" else b"3") + line[-2:-1]
    with pytest.raises(ValueError):
        decode(damaged)


def test_journal_reader_reads_what_was_appended_once(tmp_path: Path) -> None:
    w = JournalWriter(tmp_path)
    for r in records(5):
        w.append(r)
    reader = JournalReader(tmp_path)
    batch = reader.read()
    assert [r["request_id"] for r in batch.records] == [f"r{i}" for i in range(5)]
    assert batch.finished == []  # the writer still holds its segment
    reader.commit(batch)
    assert reader.read().records == []
    w.append({"request_id": "r5"})
    assert [r["request_id"] for r in JournalReader(tmp_path).read().records] == ["r5"]


def test_journal_watermark_survives_a_new_reader_and_only_moves_on_commit(tmp_path: Path) -> None:
    w = JournalWriter(tmp_path)
    for r in records(3):
        w.append(r)
    first = JournalReader(tmp_path).read()
    assert len(first.records) == 3  # read, never committed: a crash here replays them
    again = JournalReader(tmp_path)
    batch = again.read()
    assert len(batch.records) == 3
    again.commit(batch, state={"requests": 3})
    fresh = JournalReader(tmp_path)
    assert fresh.read().records == []
    assert fresh.state == {"requests": 3}


def test_journal_skips_a_torn_last_record_of_a_dead_writer(tmp_path: Path) -> None:
    w = JournalWriter(tmp_path)
    for r in records(3):
        w.append(r)
    assert w.path is not None
    path = w.path
    w.close()
    with open(path, "ab") as f:
        f.write(encode({"request_id": "torn"})[:-7])  # a crash in the middle of the last write
    reader = JournalReader(tmp_path)
    batch = reader.read()
    assert [r["request_id"] for r in batch.records] == ["r0", "r1", "r2"]
    assert batch.damaged == 1
    assert batch.finished == [path.name]
    reader.commit(batch)
    assert not path.exists()  # sealed and consumed: deleted


def test_journal_waits_for_an_incomplete_line_while_its_writer_lives(tmp_path: Path) -> None:
    w = JournalWriter(tmp_path)
    w.append({"request_id": "a"})
    assert w.path is not None
    line = encode({"request_id": "b"})
    with open(w.path, "ab") as f:
        f.write(line[:5])
    reader = JournalReader(tmp_path)
    batch = reader.read()
    assert [r["request_id"] for r in batch.records] == ["a"]
    assert batch.damaged == 0
    reader.commit(batch)
    with open(w.path, "ab") as f:
        f.write(line[5:])
    assert [r["request_id"] for r in reader.read().records] == ["b"]


def test_journal_skips_a_damaged_record_in_the_middle(tmp_path: Path) -> None:
    w = JournalWriter(tmp_path)
    w.append({"request_id": "a"})
    assert w.path is not None
    with open(w.path, "ab") as f:
        f.write(b'00000000 {"request_id":"bad"}\n')
    w.append({"request_id": "c"})
    batch = JournalReader(tmp_path).read()
    assert [r["request_id"] for r in batch.records] == ["a", "c"]
    assert batch.damaged == 1


def test_journal_rotates_by_size_and_deletes_consumed_sealed_segments(tmp_path: Path) -> None:
    w = JournalWriter(tmp_path, segment_bytes=200)
    for r in records(20):
        w.append(r)
    segments = sorted(tmp_path.glob("*.jnl"))
    assert len(segments) > 3
    reader = JournalReader(tmp_path)
    batch = reader.read(max_records=7)
    assert [r["request_id"] for r in batch.records] == [f"r{i}" for i in range(7)]
    reader.commit(batch)
    rest = reader.read()
    assert [r["request_id"] for r in rest.records] == [f"r{i}" for i in range(7, 20)]
    reader.commit(rest)
    assert sorted(tmp_path.glob("*.jnl")) == [w.path]  # only the segment still being written


def test_journal_rotates_by_age(tmp_path: Path) -> None:
    w = JournalWriter(tmp_path, segment_seconds=0.0)
    w.append({"request_id": "a"})
    first = w.path
    w.append({"request_id": "b"})
    assert first is not None and w.path != first
    assert is_sealed(first)


def _write_and_die(directory: str, n: int) -> None:
    w = JournalWriter(directory, fsync=True, fsync_interval=0.001)
    for r in records(n):
        w.append(r)
    os.kill(os.getpid(), signal.SIGKILL)


def test_journal_records_survive_kill_9_and_the_segment_is_sealed(tmp_path: Path) -> None:
    proc = multiprocessing.get_context("spawn").Process(target=_write_and_die, args=(str(tmp_path), 500))
    proc.start()
    proc.join(30)
    assert proc.exitcode == -signal.SIGKILL
    reader = JournalReader(tmp_path)
    batch = reader.read()
    assert len({r["request_id"] for r in batch.records}) == 500
    assert len(batch.finished) == 1  # the kernel dropped the dead writer's lock
    reader.commit(batch)
    assert list(tmp_path.glob("*.jnl")) == []
    assert (tmp_path / WATERMARK).exists()


def test_journal_fsync_writer_keeps_every_record(tmp_path: Path) -> None:
    w = JournalWriter(tmp_path, fsync=True, fsync_interval=0.001)
    for r in records(50):
        w.append(r)
    w.close()
    assert len(JournalReader(tmp_path).read().records) == 50


def test_journal_backlog_counts_only_uncommitted_bytes(tmp_path: Path) -> None:
    w = JournalWriter(tmp_path)
    for r in records(10):
        w.append(r)
    reader = JournalReader(tmp_path)
    assert w.path is not None
    assert reader.backlog_bytes() == w.path.stat().st_size
    reader.commit(reader.read())
    assert reader.backlog_bytes() == 0


def test_journal_writer_sees_the_ingesters_full_flag(tmp_path: Path) -> None:
    w = JournalWriter(tmp_path)
    assert not w.full()
    (tmp_path / FULL_FLAG).touch()
    w._full_checked = -1.0  # skip the once-a-second cache
    assert w.full()


def test_journal_round_trips_a_usage_event(tmp_path: Path) -> None:
    ev = UsageEvent(request_id="r1", created_at=1.5, ingress="anthropic", model="m", user_id=3,
                    usage=Usage(input_tokens=10, output_tokens=2), cost_usd=0.25, ttfb_ms=40)  # fmt: skip
    w = JournalWriter(tmp_path)
    w.append(ev)
    reader = JournalReader(tmp_path)
    (record,) = reader.read().records
    assert event_from_record(record) == ev
    assert event_from_record({**record, "added_later": 1}) == ev
    reader.commit(reader.read(), state={"n": 1})
    assert read_state(tmp_path) == {"n": 1}
