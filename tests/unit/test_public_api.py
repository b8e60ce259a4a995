import logfactory


def test_public_names_are_sorted_and_resolve() -> None:
    assert sorted(logfactory.__all__) == logfactory.__all__
    for name in logfactory.__all__:
        assert getattr(logfactory, name) is not None


def test_public_exceptions_share_one_root() -> None:
    """An SDK user catches ``logfactory.LogfactoryError`` for every failure it phrases."""
    exported = [getattr(logfactory, name) for name in logfactory.__all__]
    errors = [obj for obj in exported if isinstance(obj, type) and issubclass(obj, Exception)]
    assert logfactory.LogfactoryError in errors
    assert all(issubclass(cls, logfactory.LogfactoryError) for cls in errors)
