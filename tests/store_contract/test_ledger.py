"""The send ledger: a claim before the transport call is won by exactly one caller, ever
(also from two store objects at once); confirm, fail, retry, requeue, skip and the
in-doubt sends of runs that are gone (base.py: ``claim_send`` ... True for exactly one caller)."""

from __future__ import annotations

import threading
from contextlib import closing
from dataclasses import replace
from datetime import timedelta

import pytest

from runner.core.problems import JourneyError
from runner.store import open_store

from .kit import at, blank, instant, send

TTL = timedelta(minutes=5)


def _states(store) -> dict[str, int]:
    return store.status_summary(at(0))["sends"]


def test_a_claim_is_won_once_and_a_confirmation_records_the_transport_id(store):
    store.save_contact_state(blank("ada"), None)
    run = store.start_run("tick-1", at(0))
    assert store.claim_send(send(), run) is True
    assert store.claim_send(send(), run) is False
    store.confirm_send(send().key, "<msg-1@acme.test>")
    assert store.claim_send(send(), run) is False
    assert _states(store) == {"sent": 1}
    assert store.load_contact_state("ada").sends == [send()]


def test_two_store_objects_claiming_the_same_keys_at_once_win_each_key_once(location, store):
    """Each thread opens its own store (its own connection or pool), as two processes would."""
    keys = [f"k{n}" for n in range(60)]
    won: dict[str, list[str]] = {"a": [], "b": []}
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def claim(name: str, order: list[str]) -> None:
        try:
            with closing(open_store(location)) as mine:
                start.wait()
                won[name].extend(key for key in order if mine.claim_send(send(key), f"run-{name}"))
        except BaseException as error:  # noqa: BLE001 - reported by the test below
            errors.append(error)

    threads = [threading.Thread(target=claim, args=("a", keys)),
               threading.Thread(target=claim, args=("b", list(reversed(keys))))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert not set(won["a"]) & set(won["b"])
    assert sorted(won["a"] + won["b"]) == sorted(keys)
    assert _states(store) == {"claimed": 60}


def test_claim_sends_claims_a_batch_and_says_which_were_new(store):
    run = store.start_run("tick-1", at(0))
    assert store.claim_send(send("k2"), run)
    assert store.claim_sends([send("k1"), send("k2"), send("k3")], run, resendable=False) == [True, False, True]
    assert store.claim_sends([], run, resendable=True) == []
    assert _states(store) == {"claimed": 3}


def test_a_key_twice_in_one_batch_is_claimed_once_the_first_time(store):
    """Each backend claims a batch in one statement; a key it holds twice still wins once, as
    one claim after the other would (and a retryable failure is re-claimed once)."""
    run = store.start_run("tick-1", at(0))
    assert store.claim_sends([send("k1"), send("k2"), send("k1")], run, resendable=False) == [True, True, False]
    store.fail_send("k2", "421 later", permanent=False, retry_at=at(1), failed_at=at(0))
    assert store.claim_sends([send("k2"), send("k3"), send("k2")], run, resendable=True) == [True, True, False]
    assert _states(store) == {"claimed": 3}


def test_transient_failures_are_reclaimed_when_their_retry_time_has_come(store):
    run = store.start_run("tick-1", at(0))
    assert store.claim_send(send(), run)
    for attempt in range(1, 6):  # no attempt limit in the store: the tick gives up by age
        store.fail_send(send().key, "421 try later", permanent=False, retry_at=at(attempt), failed_at=at(0))
        assert store.retryable_sends(at(attempt) - timedelta(seconds=1)) == []
        (row,) = store.retryable_sends(at(attempt))
        assert row["key"] == send().key and row["attempts"] == attempt
        assert instant(row["first_failed_at"]) == at(0)  # the first failure's time: the age
        assert store.claim_send(send(), run)
    assert _states(store) == {"claimed": 1}


def test_permanent_failures_and_skips_are_never_reclaimed(store):
    store.save_contact_state(blank("ada"), None)
    assert store.claim_send(send("k1"), "r")
    store.fail_send("k1", "550 no such user", permanent=True)
    assert not store.claim_send(send("k1"), "r")
    store.skip_send(send("k2"), "suppressed", "r")
    assert not store.claim_send(send("k2"), "r")
    store.skip_send(send("k2"), "capped", "r")  # a second skip changes nothing
    assert _states(store) == {"failed": 1, "skipped": 1}
    assert store.retryable_sends(at(1000)) == []
    assert store.load_contact_state("ada").sends == []  # failures and skips do not count for caps


def test_requeue_makes_failed_sends_retryable_at_once_with_a_fresh_age(store):
    run = store.start_run("tick-1", at(0))
    for key, minutes in (("k1", 0), ("k2", 30), ("k3", 90)):
        assert store.claim_send(replace(send(key), at=at(0) + timedelta(minutes=minutes)), run)
        store.fail_send(key, "550 no", permanent=True)
    assert store.claim_send(send("ok"), run)
    assert store.retryable_sends() == []
    with pytest.raises(JourneyError, match="not failed: nope"):
        store.requeue_sends(["k1", "nope"])
    with pytest.raises(JourneyError, match="not failed: ok"):
        store.requeue_sends(["ok"])
    assert store.requeue_sends(["k1"]) == ["k1"]
    assert store.requeue_sends(since=at(0) + timedelta(minutes=15), until=at(0) + timedelta(hours=1)) == ["k2"]
    assert store.requeue_sends(every=True) == ["k1", "k2", "k3"]
    rows = store.retryable_sends(at(0))
    assert [(r["key"], r["first_failed_at"]) for r in rows] == [("k1", None), ("k2", None), ("k3", None)]
    assert all(store.claim_send(send(key), run) for key in ("k1", "k2", "k3"))


def test_in_doubt_sends_are_claims_of_runs_that_finished_or_died(store):
    now = at(0)
    dead = store.start_run("tick-dead", now)  # never finished; its lease expires
    assert store.acquire_lease("tick", "tick-dead", TTL, now)
    assert store.claim_send(send("dead-claim"), dead)
    finished = store.start_run("tick-done", now)
    assert store.claim_send(send("finished-claim"), finished)
    store.finish_run(finished, {"sent": 0}, "crashed", now)
    later = now + timedelta(minutes=10)
    assert store.acquire_lease("tick", "tick-live", TTL, later)
    live = store.start_run("tick-live", later)
    assert store.claim_send(send("live-claim"), live)

    assert {row["key"] for row in store.in_doubt_sends(later, mark=False)} == {"dead-claim", "finished-claim"}
    assert store.status_summary(later)["sends"] == {"claimed": 3}  # mark=False wrote nothing
    assert {row["key"] for row in store.in_doubt_sends(later)} == {"dead-claim", "finished-claim"}
    assert store.status_summary(later)["sends"] == {"claimed": 1, "in_doubt": 2}
    assert {row["key"] for row in store.status_summary(later)["in_doubt"]} == {"dead-claim", "finished-claim"}

    store.resolve_in_doubt("dead-claim", "sent")
    store.resolve_in_doubt("finished-claim", "failed")
    assert not store.in_doubt_sends(later)
    assert store.claim_send(send("finished-claim"), live)  # not delivered: may go again
    assert not store.claim_send(send("dead-claim"), live)  # delivered: never again
    with pytest.raises(JourneyError, match="no in-doubt send"):
        store.resolve_in_doubt("live-claim", "sent")
    with pytest.raises(JourneyError):
        store.resolve_in_doubt("live-claim", "maybe")  # type: ignore[arg-type]


def test_a_holder_known_to_be_gone_leaves_its_claims_in_doubt_before_its_lease_expires(store):
    assert store.acquire_lease("tick", "host:1:aa", TTL, at(0))
    run = store.start_run("host:1:aa", at(0))
    assert store.claim_send(send("k"), run)
    assert store.in_doubt_sends(at(0) + timedelta(minutes=1)) == []
    (row,) = store.in_doubt_sends(at(0) + timedelta(minutes=1), gone_holders=["host:1:aa"])
    assert row["key"] == "k"


def test_a_resendable_claim_of_a_gone_run_is_sent_again_and_a_handed_over_one_is_in_doubt(store):
    """claim_sends(resendable=True): an idempotent transport (the outbox) may send it again;
    mark_handed_over: this one went to a transport that is not, so it is in doubt."""
    run = store.start_run("tick-1", at(0))
    assert store.claim_sends([send("k1"), send("k2")], run, resendable=True) == [True, True]
    store.mark_handed_over("k2")
    store.finish_run(run, {}, "crashed", at(0))
    assert [row["key"] for row in store.in_doubt_sends(at(1))] == ["k2"]
    (retry,) = store.retryable_sends(at(1))
    assert retry["key"] == "k1"
    assert store.claim_send(send("k1"), "run-2") and not store.claim_send(send("k2"), "run-2")


def test_confirm_sends_confirms_many_at_once(store):
    run = store.start_run("tick-1", at(0))
    assert store.claim_sends([send(f"k{n}") for n in range(5)], run, resendable=False) == [True] * 5
    store.confirm_sends([(f"k{n}", f"<m{n}@x>") for n in range(4)])
    assert _states(store) == {"claimed": 1, "sent": 4}


def test_status_lists_failures_with_their_error(store):
    run = store.start_run("tick-1", at(0))
    assert store.claim_send(send("k1"), run)
    store.fail_send("k1", "421 later", permanent=False, retry_at=at(2), failed_at=at(1))
    (failure,) = store.status_summary(at(1))["failures"]
    assert (failure["key"], failure["error"]) == ("k1", "421 later")
    assert bool(failure["retryable"]) and instant(failure["retry_at"]) == at(2)
