from hypothesis import given
from hypothesis import strategies as st

from koekje.middleware.topics import MAX_TOPICS, TopicRules, app_topics

RULES = TopicRules(
    {
        "cursussen": ["/cursussen", "/en/courses/"],
        "implantologie": ["/cursussen/implantologie"],
        "home": ["/"],
    }
)


def test_prefixes_match_at_segment_boundaries() -> None:
    assert RULES("/cursussen") == ("home", "cursussen")
    assert RULES("/cursussen/") == ("home", "cursussen")
    assert RULES("/cursussenaanbod") == ("home",)
    assert RULES("/en/courses/x") == ("home", "cursussen")


def test_nested_prefixes_add_up() -> None:
    assert RULES("/cursussen/implantologie/dag-1") == ("home", "cursussen", "implantologie")


def test_no_rules_no_topics() -> None:
    assert TopicRules({})("/anything") == ()


def test_app_topics_keeps_valid_labels_and_counts_the_rest() -> None:
    assert app_topics(None) == ((), 0)
    assert app_topics(["implantologie", "Bad Label", 3, "x" * 65]) == (("implantologie",), 3)
    assert app_topics("implantologie") == ((), 1)  # a bare string is a mistake, not 13 topics
    assert app_topics([f"t{i}" for i in range(20)])[0] == tuple(f"t{i}" for i in range(MAX_TOPICS))


@given(st.text(max_size=200))
def test_any_path_yields_only_configured_topics(path: str) -> None:
    assert set(RULES(path)) <= {"cursussen", "implantologie", "home"}


@given(st.lists(st.text(max_size=80), max_size=30) | st.none() | st.integers() | st.text())
def test_app_topics_never_raises(value: object) -> None:
    labels, invalid = app_topics(value)
    assert len(labels) <= MAX_TOPICS and invalid >= 0


@given(
    st.lists(
        st.sampled_from(["/", "/cursussen", "/cursussen/x", "/implantologie", "/a/b", "/x"]), max_size=40
    )
)
def test_a_remembered_answer_is_the_rules_answer(paths: list[str]) -> None:
    rules = TopicRules({"cursussen": ["/cursussen"], "implantologie": ["/implantologie", "/cursussen/x"]})
    for path in paths:
        assert rules(path) == rules._match(path)


def test_remembered_paths_are_bounded() -> None:
    rules = TopicRules({"a": ["/a"]})
    for n in range(5000):
        rules(f"/a/{n}")
    assert len(rules._known) <= 4096
