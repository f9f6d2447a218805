import uuid
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from itsdangerous import URLSafeTimedSerializer
from support import SECRET, FakeClock

from koekje.middleware.consent import NECESSARY, ConsentCookies

OTHER_SECRET = "another-secret-key-0123456789abcdefghijkl"


def cookies(clock: FakeClock, keys: tuple[str, ...] = (SECRET,), revision: int = 1) -> ConsentCookies:
    return ConsentCookies(
        keys,
        categories=("analytics", "marketing"),
        revision=revision,
        max_age=timedelta(days=365),
        clock=clock,
    )


def test_round_trip(clock: FakeClock) -> None:
    jar = cookies(clock)
    given_consent = jar.new(frozenset({"analytics"}), uuid.uuid4())
    loaded = jar.loads(jar.dumps(given_consent))
    assert loaded == given_consent
    assert loaded is not None
    assert loaded.categories == {NECESSARY, "analytics"}
    assert loaded.allows("analytics") and not loaded.allows("marketing")


def test_tampered_value_is_no_consent(clock: FakeClock) -> None:
    jar = cookies(clock)
    value = jar.dumps(jar.new(frozenset(), uuid.uuid4()))
    # Grant oneself marketing by editing the payload: the signature no longer matches.
    forged = URLSafeTimedSerializer("wrong-key-but-same-shape-xxxxxxxxxxxxxxxx", salt="koekje.consent").dumps(
        {"c": ["analytics", "marketing"], "r": 1, "i": uuid.uuid4().hex}
    )
    assert jar.loads(forged) is None
    assert jar.loads(value[:-2] + ("AA" if value[-2:] != "AA" else "BB")) is None


def test_expires_after_max_age_also_when_cached(clock: FakeClock) -> None:
    jar = cookies(clock)
    value = jar.dumps(jar.new(frozenset({"analytics"}), uuid.uuid4()))
    assert jar.loads(value) is not None  # now cached
    clock.advance(days=364)
    assert jar.loads(value) is not None
    clock.advance(days=2)
    assert jar.loads(value) is None


def test_new_policy_revision_asks_again(clock: FakeClock) -> None:
    value = cookies(clock, revision=1).dumps(
        cookies(clock, revision=1).new(frozenset({"analytics"}), uuid.uuid4())
    )
    assert cookies(clock, revision=2).loads(value) is None


def test_key_rotation_accepts_old_signs_with_newest(clock: FakeClock) -> None:
    old = cookies(clock, keys=(SECRET,))
    value = old.dumps(old.new(frozenset({"analytics"}), uuid.uuid4()))
    rotated = cookies(clock, keys=(SECRET, OTHER_SECRET))
    assert rotated.loads(value) is not None
    fresh = rotated.dumps(rotated.new(frozenset(), uuid.uuid4()))
    assert cookies(clock, keys=(OTHER_SECRET,)).loads(fresh) is not None
    assert cookies(clock, keys=(OTHER_SECRET,)).loads(value) is None


def test_categories_no_longer_configured_are_dropped(clock: FakeClock) -> None:
    wide = ConsentCookies(
        (SECRET,),
        categories=("analytics", "personalization"),
        revision=1,
        max_age=timedelta(days=1),
        clock=clock,
    )
    value = wide.dumps(wide.new(frozenset({"analytics", "personalization"}), uuid.uuid4()))
    loaded = cookies(clock).loads(value)
    assert loaded is not None and loaded.categories == {NECESSARY, "analytics"}


def test_oversized_values_are_not_even_verified(clock: FakeClock) -> None:
    assert cookies(clock).loads("a" * 10_000) is None


@given(st.text(max_size=300))
def test_arbitrary_cookie_values_never_raise_and_never_grant(value: str) -> None:
    assert cookies(FakeClock()).loads(value) is None


@pytest.mark.parametrize(
    "payload",
    [
        [],
        "x",
        {"c": "analytics", "r": 1, "i": "0" * 32},
        {"c": [], "r": 1, "i": "nothex"},
        {"c": [1], "r": 1, "i": "0" * 32},
        {"c": [], "r": "1", "i": "0" * 32},
    ],
)
def test_well_signed_but_malformed_payloads_are_refused(clock: FakeClock, payload: object) -> None:
    value = URLSafeTimedSerializer(SECRET, salt="koekje.consent").dumps(payload)
    assert cookies(clock).loads(value) is None
