"""Noisy feedback: deduplication window, per-user rate cap, huber loss and the adaptive step,
applied by the core on the real-time path (update) of both families."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import rtrec_native as rt

FAMILIES = ("mf", "two_tower")


def small(model: str, **options) -> rt.Recommender:
    if model == "two_tower":
        return rt.Recommender(model="two_tower", dim=8, tower=(8,), history=5, negatives=4, num_threads=1, **options)
    return rt.Recommender(model="mf", loss="squared", dim=8, num_threads=1, **options)


def counters(rec: rt.Recommender) -> tuple[int, int]:
    stats = rec.stats()
    return stats["deduplicated"], stats["rate_limited"]


def warm(rec: rt.Recommender) -> None:
    """A few users and items so that scores are not all alike."""
    users = np.arange(40) % 8
    items = (np.arange(40) * 7) % 13
    rec.update(users, items, labels=np.full(40, 4.0, dtype=np.float32), timestamps=np.arange(40, dtype=np.float64))


def test_every_option_is_off_by_default_and_its_counters_are_in_stats():
    for model in FAMILIES:
        params = small(model).get_params()
        assert params["dedup_window"] is None and params["max_user_rate"] is None
        assert params["adaptive_step"] is False and params["huber_delta"] == 1.0
        rec = small(model)
        warm(rec)
        rec.update([1, 1], [2, 2], labels=[4.0, 4.0], timestamps=[100.0, 100.0])
        assert counters(rec) == (0, 0)  # off: the duplicate is learned


@pytest.mark.parametrize("model", FAMILIES)
def test_an_identical_event_inside_the_window_is_counted_and_changes_nothing(model):
    rec = small(model, dedup_window=60.0)
    warm(rec)
    rec.update([1], [2], labels=[4.0], timestamps=[100.0])
    before = rec.predict(np.arange(8), np.full(8, 2))
    # the same (user, item, label) 30 s later, and 50 s earlier (out of order): duplicates
    rec.update([1, 1], [2, 2], labels=[4.0, 4.0], timestamps=[130.0, 50.0])
    assert counters(rec) == (2, 0)
    np.testing.assert_array_equal(rec.predict(np.arange(8), np.full(8, 2)), before)
    # another label, another item, or outside the window: learned
    rec.update([1, 1, 1], [2, 3, 2], labels=[5.0, 4.0, 4.0], timestamps=[131.0, 132.0, 161.0])
    assert counters(rec) == (2, 0)
    assert not np.array_equal(rec.predict(np.arange(8), np.full(8, 2)), before)
    # the window counts from the last learned copy (161): 200 is a duplicate, 222 is not
    rec.update([1, 1], [2, 2], labels=[4.0, 4.0], timestamps=[200.0, 222.0])
    assert counters(rec) == (3, 0)


def test_dedup_learns_exactly_what_a_model_fed_without_the_duplicates_learns():
    rng = np.random.default_rng(0)
    n = 400
    users, items = rng.integers(0, 20, n), rng.integers(0, 30, n)
    labels = rng.integers(1, 6, n).astype(np.float32)
    times = np.sort(rng.uniform(0, 10_000, n))
    repeat = rng.random(n) < 0.3  # 30% of the events arrive twice, 5 s later
    order = np.argsort(np.concatenate([times, times[repeat] + 5.0]), kind="stable")
    stream = [np.concatenate([a, a[repeat]])[order] for a in (users, items, labels, times)]
    noisy = rt.Recommender(model="mf", loss="squared", dim=8, dedup_window=10.0)
    clean = rt.Recommender(model="mf", loss="squared", dim=8)
    noisy.update(stream[0], stream[1], labels=stream[2], timestamps=stream[3])
    clean.update(users, items, labels=labels, timestamps=times)
    # a pair that repeats by chance inside 10 s is deduplicated in both streams' sense
    assert noisy.stats()["deduplicated"] >= repeat.sum()
    extra = noisy.stats()["deduplicated"] - repeat.sum()
    assert noisy.stats()["updates"] == clean.stats()["updates"] - extra
    if extra == 0:
        grid_u, grid_i = np.repeat(np.arange(20), 30), np.tile(np.arange(30), 20)
        np.testing.assert_allclose(noisy.predict(grid_u, grid_i), clean.predict(grid_u, grid_i), rtol=1e-6)


@pytest.mark.parametrize("model", FAMILIES)
def test_a_users_events_beyond_the_rate_cap_are_counted_not_learned(model):
    rec = small(model, max_user_rate=2.0)  # a bucket of 2 events, refilled at 2 per second
    warm(rec)
    base = rec.stats()["rate_limited"]
    bot = np.full(10, 99)
    rec.update(bot, np.full(10, 5), labels=np.full(10, 5.0, dtype=np.float32), timestamps=np.full(10, 1000.0))
    assert rec.stats()["rate_limited"] - base == 8
    # another user at the same moment is not limited by the bot
    rec.update([98, 98], [5, 6], labels=[5.0, 5.0], timestamps=[1000.0, 1000.0])
    assert rec.stats()["rate_limited"] - base == 8
    # one second later the bot has 2 events again
    rec.update(bot[:3], np.full(3, 5), labels=np.full(3, 5.0, dtype=np.float32), timestamps=np.full(3, 1001.0))
    assert rec.stats()["rate_limited"] - base == 9
    # a rate-limited event changes nothing
    before = rec.predict(np.full(13, 99), np.arange(13))
    rec.update([99], [7], labels=[5.0], timestamps=[1001.0])
    np.testing.assert_array_equal(rec.predict(np.full(13, 99), np.arange(13)), before)


def test_huber_pulls_less_than_squared_on_an_outlier_and_the_same_near_the_label():
    def after(loss: str, label: float) -> float:
        rec = rt.Recommender(model="mf", loss=loss, dim=8, seed=3, learning_rate=0.05, optimizer="sgd")
        rec.update([1, 2], [1, 1], labels=[3.0, 3.0])
        start = float(rec.predict([1], [1])[0])
        rec.update([1], [1], labels=[label], weights=[1.0])
        return float(rec.predict([1], [1])[0]) - start - (rec.stats()["global_bias"] - 3.0)

    assert abs(after("huber", 50.0)) < 0.25 * abs(after("squared", 50.0))
    assert after("huber", 3.5) == pytest.approx(after("squared", 3.5), rel=1e-5)


def test_huber_is_a_rating_loss_of_mf_only():
    rec = rt.Recommender(model="mf", loss="huber", huber_delta=0.5)
    assert rec.get_params()["huber_delta"] == 0.5
    with pytest.raises(ValueError, match="labels are required"):
        rec.update([1], [2])
    with pytest.raises(ValueError, match="huber"):
        rt.Recommender(model="two_tower", loss="huber")
    with pytest.raises(ValueError, match="huber_delta applies to loss='huber' only"):
        rt.Recommender(model="mf", loss="squared", huber_delta=0.5)


def test_the_adaptive_step_damps_contradicting_labels_and_leaves_consistent_ones_alone():
    def movements(adaptive: bool, labels: list[float]) -> np.ndarray:
        rec = rt.Recommender(model="mf", loss="squared", dim=8, seed=1, adaptive_step=adaptive, optimizer="sgd")
        rec.update([7, 8], [1, 2], labels=[3.0, 3.0])
        out = []
        for label in labels:
            before = float(rec.predict([1], [1])[0])
            rec.update([1], [1], labels=[label])
            out.append(abs(float(rec.predict([1], [1])[0]) - before))
        return np.array(out)

    flipping = [5.0, 1.0] * 15
    damped, plain = movements(True, flipping), movements(False, flipping)
    assert damped[10:].sum() < 0.5 * plain[10:].sum()
    consistent = [5.0] * 5  # residual of one sign: full steps, the same as without
    np.testing.assert_allclose(movements(True, consistent), movements(False, consistent), rtol=1e-5)


def test_bad_options_are_refused_with_their_name():
    for kwargs, error, match in [
        ({"dedup_window": -1.0}, ValueError, "dedup_window"),
        ({"dedup_window": 0.0}, ValueError, "dedup_window"),
        ({"dedup_window": float("nan")}, ValueError, "dedup_window"),
        ({"max_user_rate": float("inf")}, ValueError, "max_user_rate"),
        ({"max_user_rate": "fast"}, TypeError, "max_user_rate"),
        ({"huber_delta": 0.0, "loss": "huber"}, ValueError, "huber_delta"),
        ({"adaptive_step": 1}, TypeError, "adaptive_step"),
        ({"adaptive_step": True, "loss": "bpr"}, ValueError, "adaptive_step"),
        ({"adaptive_step": True, "model": "two_tower"}, ValueError, "adaptive_step"),
    ]:
        with pytest.raises(error, match=match):
            rt.Recommender(**{"model": "mf", **kwargs})


@pytest.mark.parametrize("model", FAMILIES)
def test_options_and_counters_survive_a_snapshot(tmp_path, model):
    options = {"dedup_window": 30.0, "max_user_rate": 1.5}
    if model == "mf":
        options.update(loss="huber", huber_delta=0.5, adaptive_step=True)
    rec = small(model, **options) if model == "two_tower" else rt.Recommender(model="mf", dim=8, **options)
    warm(rec)
    rec.update([1, 1, 1, 1], [2, 2, 3, 4], labels=[4.0] * 4, timestamps=[500.0] * 4)
    dedup, limited = counters(rec)
    assert dedup == 1 and limited == 2  # a bucket of 1.5: (1, 3) and (1, 4) wait
    rec.save(tmp_path / "m.rtrec")
    loaded = rt.Recommender.load(tmp_path / "m.rtrec")
    for key, value in options.items():
        assert loaded.get_params()[key] == value
    assert counters(loaded) == (dedup, limited)


@pytest.mark.parametrize("model", FAMILIES)
def test_concurrent_updates_give_every_event_exactly_one_verdict(model):
    rec = small(model, dedup_window=5.0, max_user_rate=3.0)
    warm(rec)
    start = rec.stats()
    n_threads, n = 4, 3000
    errors: list[BaseException] = []

    def feed(seed: int) -> None:
        rng = np.random.default_rng(seed)
        try:
            for _ in range(n // 100):
                users, items = rng.integers(0, 30, 100), rng.integers(0, 20, 100)
                labels = rng.integers(4, 6, 100).astype(np.float32)
                times = np.sort(rng.uniform(0, 200, 100))
                rec.update(users, items, labels=labels, timestamps=times)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=feed, args=(s,)) for s in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    stats = rec.stats()
    dropped = stats["deduplicated"] + stats["rate_limited"] - start["deduplicated"] - start["rate_limited"]
    assert stats["deduplicated"] > 0 and stats["rate_limited"] > 0
    if model == "mf":  # squared loss: one gradient step per learned event
        learned = stats["updates"] + stats["skipped_updates"] - start["updates"] - start["skipped_updates"]
        assert learned + dropped == n_threads * n
    else:
        assert dropped < n_threads * n
    assert np.isfinite(rec.predict(np.arange(30), np.arange(30) % 20)).all()


def test_the_guard_memory_is_fixed_whatever_the_number_of_users():
    def extra_memory(n_users: int) -> int:
        users = np.arange(n_users)
        items = users % 50
        labels = np.full(n_users, 4.0, dtype=np.float32)
        times = np.arange(n_users, dtype=np.float64)
        on = rt.Recommender(model="mf",
                            loss="squared", dim=4, dedup_window=100.0, max_user_rate=1.0, adaptive_step=True)
        off = rt.Recommender(model="mf", loss="squared", dim=4)
        on.update(users, items, labels=labels, timestamps=times)
        off.update(users, items, labels=labels, timestamps=times)
        return on.stats()["memory_bytes"] - off.stats()["memory_bytes"]

    assert extra_memory(1_000) == extra_memory(100_000) > 0


# A full snapshot written by the format before the noisy-feedback options (version 4, from
# main at the time): Recommender(model="mf", loss="squared", dim=4, seed=0, num_threads=1) after
# update([1, 2, 1], [10, 11, 12], labels=[4, 3, 5], timestamps=[1, 2, 3]).
SNAPSHOT_V4 = (
    "UlRSRUNTTlAEAAAAAAAAAAQAAAAAAAAAAQAAAAEAAADNzEw9F7fROAAAIEHNzMw9AAAAAAAAAAAAAAAAAAAoQAAAAAAAAAhA"
    "AACAQAMAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAMAAAAAAAAAMESBvN7CsRwAAAAAAAAAAAAAAAAAAAAAMESBvN7CsRwAAAAA"
    "AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAACEAAAAAAAAAAAAAAgD8AAAAAAAAAAAAAAAAAAAAA"
    "AAAAAOHlToBIacS3AQAAAAIAAAABAAAAAAAAAAIAAAAAAAAAAAAIQHS/zD3Bll4/rfYSPs5lJz7IrZ67PPa6PWAvaDsLI5o8"
    "Ns3NPOMINTwCAAAAAAAAAAEAAAAAAAAAAAAAQM3MTL2KSXk++vkMvYAHaDrXygi+4jNMPs2t3jtHKr86QeibOtKseDv3sFmv"
    "d1hLaAEAAAADAAAACgAAAAAAAAABAAAAAAAAAAAA8D/IzEw9SdZnOk5b47ytKl4+H9PCPYTF0r3Wcpk3tidrNpyOJDebW/o2"
    "CwAAAAAAAAABAAAAAAAAAAAAAEDNzEy9ikl5Pqq8771AZOC8Fpf1PeASM77Xk+M6IgsaOkPc3jqBCLI7DAAAAAAAAAABAAAA"
    "AAAAAAAACEDNzEw9aF1eP9Ad6T0100k+n8D1PeyWJj7OGPk7rU03PEg2KzucbcI6XTaRl10s4foCAAAAAgAAAAoAAAAAAAAA"
    "DAAAAAAAAAABAAAACwAAAAAAAAARkAI7Aw8BAQAAAAAAAAAACBtzLS60iQkAAAAAPtL+/bhKSckAAAAAAAAAAAgbcy0utIkJ"
    "AAAAAD7S/v24SknJAAAAAAAAAAAAAAAAXHMgCgjOy18AAAAAAAAAAAAAAAAAAAAAAAAAAJpqpeBEM3VxAAAAAAAAAAAIG3Mt"
    "LrSJCVJUUkVDRU5EnLOEJI/WL3M="
)


def test_a_version_4_snapshot_loads_with_the_options_off(tmp_path):
    import base64

    path = tmp_path / "v4.rtrec"
    path.write_bytes(base64.b64decode(SNAPSHOT_V4))
    assert path.read_bytes()[8:12] == (4).to_bytes(4, "little")
    rec = rt.Recommender.load(path)
    np.testing.assert_allclose(rec.predict([1, 2], [10, 12]), [4.171603, 4.012669], rtol=1e-6)
    params = rec.get_params()
    assert params["dedup_window"] is None and params["max_user_rate"] is None
    assert params["huber_delta"] == 1.0 and params["adaptive_step"] is False
    assert counters(rec) == (0, 0)
    rec.save(tmp_path / "now.rtrec")  # written in the current version, which loads again
    rt.Recommender(model="mf").save(tmp_path / "fresh.rtrec")
    current = (tmp_path / "fresh.rtrec").read_bytes()[8:12]
    assert (tmp_path / "now.rtrec").read_bytes()[8:12] == current != (4).to_bytes(4, "little")
    np.testing.assert_allclose(rt.Recommender.load(tmp_path / "now.rtrec").predict([1, 2], [10, 12]),
                               [4.171603, 4.012669], rtol=1e-6)
