"""Word-level rules: what a template token accepts, how a word generalises, what is a value."""

from __future__ import annotations

from logfactory.factory.patterns.miner_cluster import fits, generalise, valueish


def test_generalise_keeps_structural_punctuation_only() -> None:
    assert generalise("user=root", None, "user=alice") == "user=<*>"
    assert generalise("[root]", None, "[bob]") == "[<*>]"
    assert generalise("MININT-FNANLI5", None, "MININT-ABC") == "MININT-<*>"
    assert generalise("org.apache.Foo", None, "org.apache.Bar") == "org.apache.<*>"
    # a shared word ending is not kept: "<*>.com" would over-fit host names
    assert generalise("ns.example.com", None, "mail.other.com") == "<*>"
    assert generalise("alpha", None, "beta") == "<*>"


def test_fits_respects_prefix_suffix_and_length() -> None:
    wild = ("user=", "", 5)
    assert fits(wild, "user=bob")
    assert fits(wild, "user=")
    assert not fits(wild, "uid=0")


def test_values_of_one_parameter() -> None:
    assert valueish("user=root", "user=guest")
    assert not valueish("tty=NODEVssh", "tty=:<*>")  # a masked value is another shape
    assert valueish("<*>", "admin")  # a word where a value was masked
    assert not valueish("<*>", "****")
    assert valueish("host.example.com", "other")
    assert not valueish("startup", "shutdown")
