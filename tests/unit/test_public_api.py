import logfactory


def test_public_names_are_sorted_and_resolve() -> None:
    assert sorted(logfactory.__all__) == logfactory.__all__
    for name in logfactory.__all__:
        assert getattr(logfactory, name) is not None
