import uuid
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from itsdangerous import URLSafeTimedSerializer
from support import SECRET, FakeClock

from koekje.analytics import Method
from koekje.analytics.web import clock_signer
from koekje.middleware.consent import Consent, ConsentCookies, Revocations
from koekje.middleware.declarations import NECESSARY

OTHER_SECRET = "another-secret-key-0123456789abcdefghijkl"


def cookies(clock: FakeClock, keys: tuple[str, ...] = (SECRET,), revision: int = 1) -> ConsentCookies:
    return ConsentCookies(
        keys,
        categories=("analytics", "marketing"),
        services=("youtube", "matomo"),
        revision=revision,
        max_age=timedelta(days=365),
        clock=clock,
    )


def grant(jar: ConsentCookies, categories: set[str], **options: object) -> Consent:
    options.setdefault("method", Method.BANNER)
    return jar.new(frozenset(categories), uuid.uuid4(), **options)  # type: ignore[arg-type]


def test_round_trip(clock: FakeClock) -> None:
    jar = cookies(clock)
    given_consent = grant(jar, {"analytics"})
    loaded = jar.loads(jar.dumps(given_consent))
    assert loaded == given_consent
    assert loaded is not None
    assert loaded.categories == {NECESSARY, "analytics"}
    assert loaded.allows("analytics") and not loaded.allows("marketing")


def test_tampered_value_is_no_consent(clock: FakeClock) -> None:
    jar = cookies(clock)
    value = jar.dumps(grant(jar, set()))
    # Grant oneself marketing by editing the payload: the signature no longer matches.
    forged = URLSafeTimedSerializer(
        "wrong-key-but-same-shape-xxxxxxxxxxxxxxxx", salt="koekje.consent", signer=clock_signer(clock)
    ).dumps({"c": ["analytics", "marketing"], "r": 1, "i": uuid.uuid4().hex})
    assert jar.loads(forged) is None
    assert jar.loads(value[:-2] + ("AA" if value[-2:] != "AA" else "BB")) is None


def test_expires_after_max_age_also_when_cached(clock: FakeClock) -> None:
    jar = cookies(clock)
    value = jar.dumps(grant(jar, {"analytics"}))
    assert jar.loads(value) is not None  # now cached
    clock.advance(days=364)
    assert jar.loads(value) is not None
    clock.advance(days=2)
    assert jar.loads(value) is None


def test_new_policy_revision_asks_again(clock: FakeClock) -> None:
    value = cookies(clock, revision=1).dumps(grant(cookies(clock, revision=1), {"analytics"}))
    assert cookies(clock, revision=2).loads(value) is None


def test_key_rotation_accepts_old_signs_with_newest(clock: FakeClock) -> None:
    old = cookies(clock, keys=(SECRET,))
    value = old.dumps(grant(old, {"analytics"}))
    rotated = cookies(clock, keys=(SECRET, OTHER_SECRET))
    assert rotated.loads(value) is not None
    fresh = rotated.dumps(grant(rotated, set()))
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
    value = wide.dumps(grant(wide, {"analytics", "personalization"}))
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
        {"c": ["analytics"], "r": 1, "i": "0" * 32, "v": "not a uuid"},
        {"c": [], "r": 1, "i": "0" * 32, "m": "made-up"},
        {"c": [], "r": 1, "i": "0" * 32, "d": 2},
        {"c": [], "r": 1, "i": "0" * 32, "s": "youtube"},
        {"c": [], "r": 1, "i": "0" * 32, "s": ["x"] * 100},
    ],
)
def test_well_signed_but_malformed_payloads_are_refused(clock: FakeClock, payload: object) -> None:
    assert cookies(clock).loads(signed(clock, {"c": ["analytics"], "r": 1, "i": "0" * 32})) is not None
    assert cookies(clock).loads(signed(clock, payload)) is None


def signed(clock: FakeClock, payload: object) -> str:
    """A payload signed with the right key at the clock's time: only its content can make it fail."""
    return URLSafeTimedSerializer(SECRET, salt="koekje.consent", signer=clock_signer(clock)).dumps(payload)


def test_services_decision_and_signal_round_trip(clock: FakeClock) -> None:
    jar = cookies(clock)
    given_consent = grant(jar, set(), services=frozenset({"youtube", "unknown"}), method=Method.SETTINGS)
    loaded = jar.loads(jar.dumps(given_consent))
    assert loaded == given_consent
    assert loaded is not None and loaded.services == {"youtube"}  # only declared services are kept
    assert loaded.allows_service("youtube", "marketing") and not loaded.allows("marketing")
    implicit = grant(jar, set(), method=Method.GPC, gpc=True)
    assert not implicit.decided
    loaded = jar.loads(jar.dumps(implicit))
    assert loaded is not None and not loaded.decided and loaded.gpc and loaded.method == Method.GPC


def test_a_visitor_id_exists_only_with_statistics(clock: FakeClock) -> None:
    jar = cookies(clock)
    vid = uuid.uuid4()
    assert grant(jar, {"marketing"}, visitor_id=vid).visitor_id is None
    with_stats = jar.loads(jar.dumps(grant(jar, {"analytics"}, visitor_id=vid)))
    assert with_stats is not None and with_stats.visitor_id == vid
    # A payload that carries an id without statistics (signed, so only by a bug) still yields none.
    loaded = jar.loads(signed(clock, {"c": ["marketing"], "r": 1, "i": uuid.uuid4().hex, "v": vid.hex}))
    assert loaded is not None and loaded.visitor_id is None


def test_signing_again_keeps_the_decision_time(clock: FakeClock) -> None:
    """Moving a cookie to its __Host- name signs it again; the decision must not last longer for that."""
    jar = cookies(clock)
    value = jar.dumps(grant(jar, {"analytics"}))
    clock.advance(days=300)
    loaded = jar.loads(value)
    assert loaded is not None
    again = jar.dumps(loaded)
    clock.advance(days=66)
    assert jar.loads(again) is None


def test_revocations_remember_superseded_ids_for_a_cookie_lifetime(clock: FakeClock) -> None:
    revoked = Revocations(timedelta(days=10), clock)
    old, other = uuid.uuid4(), uuid.uuid4()
    revoked.add([(old, clock())])
    assert old in revoked and other not in revoked
    clock.advance(days=11)
    revoked.add([(other, clock())])  # adding purges what can no longer be presented validly
    assert old not in revoked and other in revoked and len(revoked) == 1
