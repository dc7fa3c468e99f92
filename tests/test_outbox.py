"""The durable outbox: atomic packet files, a checksummed journal, SIGKILL at random moments."""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.downlink.outbox import JOURNAL, Outbox, decode_record, encode_record
from pipeline.errors import EotriageError, OutboxError

from .conftest import REPO, SAMPLES


def _payload(i: int, size: int = 1000) -> bytes:
    """Deterministic, distinct packet bytes for item i."""
    seed = hashlib.sha256(str(i).encode()).digest()
    return (seed * (size // len(seed) + 1))[: size + i % 97]


def test_put_pending_sent_ack_and_reopen(tmp_path: Path) -> None:
    tifs = sorted((SAMPLES / "s2_fire_G90292").glob("*.tif"))
    real = tifs[0].read_bytes()[:50_000]  # real bytes of a sample band, as a chip would be
    with Outbox(tmp_path / "ob") as ob:
        assert ob.recovery.clean and ob.recovery.records == 0
        a = ob.put("scene-1/chip.tif", real)
        b = ob.put("alert-7", b"FIRE 58.088N 123.262W")
        c = ob.put("scene-2/downlink.bin", _payload(2))
        assert [i.id for i in ob.pending()] == [a, b, c]
        assert ob.read(a) == real
        ob.mark_sent(a)
        ob.mark_sent(a)  # retransmission
        ob.mark_sent(b)
        ob.ack(b)
        assert [(i.id, i.state) for i in ob.pending()] == [(a, "sent"), (c, "queued")]
        assert ob.get(a).sent_count == 2
        assert not (tmp_path / "ob" / "data" / f"{b}.pkt").exists()  # acked: space freed
    with Outbox(tmp_path / "ob") as ob:
        assert ob.recovery.clean and ob.recovery.records == 7
        assert [(i.name, i.state, i.sent_count) for i in ob.pending()] == [
            ("scene-1/chip.tif", "sent", 2),
            ("scene-2/downlink.bin", "queued", 0),
        ]
        assert ob.read(a) == real
        assert ob.get(b).state == "acked"
        with pytest.raises(OutboxError, match="was acknowledged"):
            ob.read(b)
        d = ob.put("scene-3/downlink.bin", b"x")
        assert d > c  # ids keep increasing across reopen


def test_put_is_idempotent_per_name(tmp_path: Path) -> None:
    with Outbox(tmp_path) as ob:
        a = ob.put("scene-1", b"abc")
        assert ob.put("scene-1", b"abc") == a
        ob.ack(a)
        assert ob.put("scene-1", b"abc") == a  # still known after the ack: not sent again
        assert ob.pending() == []
        with pytest.raises(OutboxError, match="different content"):
            ob.put("scene-1", b"abd")
    with Outbox(tmp_path) as ob:
        assert ob.put("scene-1", b"abc") == a and ob.pending() == []
        assert len(ob.items()) == 1


def test_second_open_is_refused(tmp_path: Path) -> None:
    with Outbox(tmp_path):
        with pytest.raises(OutboxError, match="open in another process"):
            Outbox(tmp_path)
    Outbox(tmp_path).close()  # free again after close
    assert issubclass(OutboxError, EotriageError)


def test_torn_last_record_is_cut_off(tmp_path: Path) -> None:
    with Outbox(tmp_path) as ob:
        a = ob.put("one", b"1")
        ob.put("two", b"2")
    journal = tmp_path / JOURNAL
    good = journal.read_bytes()
    for torn in (
        encode_record({"op": "ack", "id": a})[:-5],  # write interrupted mid-record
        b"\0" * 300,  # file extended, data never written (zero fill after power loss)
        encode_record({"op": "ack", "id": a})[:-3] + b"X\n",  # garbled, with its newline
    ):
        journal.write_bytes(good + torn)
        with Outbox(tmp_path) as ob:
            assert ob.recovery.torn_tail_bytes == len(torn)
            assert ob.recovery.bad_records == 0
            assert [i.name for i in ob.pending()] == ["one", "two"]  # the ack never happened
        assert journal.read_bytes() == good
    # damage in the middle of the journal is skipped and counted, later records still count
    lines = good.splitlines(keepends=True)
    lines[0] = lines[0][:12] + b"#" + lines[0][13:]
    journal.write_bytes(b"".join(lines))
    with Outbox(tmp_path) as ob:
        assert ob.recovery.bad_records == 1 and ob.recovery.torn_tail_bytes == 0
        assert [i.name for i in ob.pending()] == ["two"]
        # the file of "one" lost its put record although a later put is journalled: its put
        # had returned, so the bytes are kept aside, not deleted
        assert ob.recovery.quarantined == (a,) and ob.recovery.orphans_removed == 0
        assert (tmp_path / "quarantine" / f"{a}.pkt").read_bytes() == b"1"


def test_record_codec_rejects_damage() -> None:
    rec = {"op": "put", "id": "0000000001", "name": "x", "size": 1, "sha256": "ab"}
    line = encode_record(rec)
    assert line.endswith(b"\n") and decode_record(line[:-1]) == rec
    for i in range(len(line) - 1):
        flipped = bytearray(line[:-1])
        flipped[i] ^= 0x04
        assert decode_record(bytes(flipped)) != rec
    assert decode_record(encode_record({"op": "bogus"})[:-1]) is None


def test_leftovers_and_corrupt_packets_found_at_open(tmp_path: Path) -> None:
    with Outbox(tmp_path) as ob:
        a = ob.put("one", b"1" * 100)
        b = ob.put("two", b"2" * 100)
    (tmp_path / "tmp" / ".0000000003.pkt.123.tmp").write_bytes(b"half a pack")
    (tmp_path / "data" / "0000000003.pkt").write_bytes(b"renamed, put never journalled")
    data_b = tmp_path / "data" / f"{b}.pkt"
    data_b.write_bytes(b"2" * 99 + b"3")  # a flipped bit in storage
    with Outbox(tmp_path) as ob:
        r = ob.recovery
        assert (r.temp_removed, r.orphans_removed, r.corrupt, r.missing) == (1, 1, (b,), ())
        assert list((tmp_path / "tmp").iterdir()) == []
        assert sorted(p.name for p in (tmp_path / "data").iterdir()) == [f"{a}.pkt", f"{b}.pkt"]
        with pytest.raises(OutboxError, match="corrupt"):
            ob.read(b)
        assert ob.put("three", b"3") == "0000000003"


def test_compact_keeps_state(tmp_path: Path) -> None:
    with Outbox(tmp_path) as ob:
        ids = [ob.put(f"p{i}", _payload(i)) for i in range(20)]
        for i in ids[:15]:
            ob.mark_sent(i)
        for i in ids[:10]:
            ob.ack(i)
        before = ob.items()
        size = (tmp_path / JOURNAL).stat().st_size
        ob.compact()
        assert (tmp_path / JOURNAL).stat().st_size < size
        ob.put("p20", b"after compaction")
    with Outbox(tmp_path) as ob:
        assert ob.recovery.clean
        assert ob.items()[:20] == before
        assert ob.put("p3", _payload(3)) == ids[3]
        assert [i.name for i in ob.pending()][-1] == "p20"


_CHILD = """
import hashlib, random, sys
from pipeline.downlink.outbox import Outbox
def _payload(i, size=1000):
    seed = hashlib.sha256(str(i).encode()).digest()
    return (seed * (size // len(seed) + 1))[: size + i % 97]
directory, n, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(seed)
print("ready", flush=True)
with Outbox(directory) as ob:
    for i in range(n):
        item_id = ob.put(f"item-{i}", _payload(i))
        print(f"put {i} {item_id}", flush=True)
        if rng.random() < 0.4:
            ob.mark_sent(item_id)
            if rng.random() < 0.5:
                ob.ack(item_id)
                print(f"ack {i} {item_id}", flush=True)
        if i % 50 == 49:
            ob.compact()
print("done", flush=True)
"""


@pytest.mark.slow
def test_sigkill_at_random_points_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    """A producer putting N packets is SIGKILLed after a random delay, again and again, and
    restarted each time (it redoes all N puts, as a restarted pipeline would).  After every
    kill: each put that returned is there exactly once with its bytes, no partial file is
    visible, acknowledged packets stay acknowledged, the journal recovers."""
    directory = tmp_path / "ob"
    rng = random.Random(20261128)
    returned: dict[int, str] = {}
    acked: set[int] = set()
    t_end = time.monotonic() + 30
    rounds = 0
    while rounds < 25 and time.monotonic() < t_end:
        rounds += 1
        # the producer never finishes on its own: every round ends in a SIGKILL, at a random
        # moment (opening/recovery, re-putting old items, writing new ones, compacting)
        proc = subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(directory), "1000000", str(rounds)],
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.0, 0.3))
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait() == -signal.SIGKILL
        out = proc.stdout.read()
        proc.stdout.close()
        last = -1
        for line in out.splitlines():
            word, *rest = line.split()
            if word == "put":
                last, item_id = int(rest[0]), rest[1]
                assert returned.setdefault(last, item_id) == item_id  # same id on every re-put
            elif word == "ack":
                acked.add(int(rest[0]))
        with Outbox(directory) as ob:
            items = ob.items()
            names = [it.name for it in items]
            assert len(names) == len(set(names)), "a packet was duplicated"
            by_name = {it.name: it for it in items}
            for i, item_id in returned.items():
                it = by_name[f"item-{i}"]
                assert it.id == item_id
                if i in acked:
                    assert it.state == "acked"
                elif it.state == "acked":
                    # the ack reached the journal just before the kill, its print did not
                    assert i == last
                    acked.add(i)
                else:
                    assert ob.read(item_id) == _payload(i)
            assert not ob.recovery.corrupt and not ob.recovery.missing
            assert not ob.recovery.quarantined
            assert ob.recovery.bad_records == 0  # only a torn tail, never mid-journal damage
            assert list((directory / "tmp").iterdir()) == []
            visible = {p.stem for p in (directory / "data").iterdir()}
            assert visible == {it.id for it in ob.pending()}
            for it in ob.pending():
                assert ob.read(it.id) == _payload(int(it.name.split("-")[1]))
    assert rounds >= 5 and len(returned) > 0
    n = max(returned) + 10
    # a last uninterrupted run completes the set without duplicating anything
    subprocess.run(
        [sys.executable, "-c", _CHILD, str(directory), str(n), "0"],
        cwd=REPO,
        check=True,
        capture_output=True,
        timeout=60,
    )
    with Outbox(directory) as ob:
        assert sorted(it.name for it in ob.items()) == sorted(f"item-{i}" for i in range(n))
        assert ob.recovery.clean
