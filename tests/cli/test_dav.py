"""`pcloud dav share|unshare|shares`: what the person typing sees and what the directory holds."""

from __future__ import annotations

from tests.cli.test_admin import PASSWORD, Cli, cli  # noqa: F401  (the fixture)


def test_share_list_and_unshare(cli: Cli) -> None:  # noqa: F811
    for user in ("alice@example.org", "bob@example.org"):
        assert cli("user", "add", user, "--password", PASSWORD) == 0
    assert (
        cli("dav", "share", "alice@example.org", "calendar", "bob@example.org", "--read-only") == 0
    )
    assert cli.out == (
        "alice@example.org/calendar shared with bob@example.org (read-only)\n"
        "  its address: /dav/alice@example.org/calendar/\n"
    )
    assert cli("dav", "share", "alice@example.org", "calendar", "bob@example.org") == 0
    assert cli("dav", "shares", "bob@example.org") == 0
    assert cli.out == "alice@example.org/calendar -> bob@example.org (read-write)\n"
    assert cli("dav", "unshare", "alice@example.org", "calendar", "bob@example.org") == 0
    assert cli("dav", "shares") == 0 and cli.out == ""
    assert cli("dav", "unshare", "alice@example.org", "calendar", "bob@example.org") == 1
    assert "is not shared with" in cli.err


def test_bad_shares_are_refused(cli: Cli) -> None:  # noqa: F811
    assert cli("user", "add", "alice@example.org", "--password", PASSWORD) == 0
    assert cli("dav", "share", "alice@example.org", "../etc", "alice@example.org") == 2
    assert cli("dav", "share", "alice@example.org", "calendar", "alice@example.org") == 2
    assert cli("dav", "share", "alice@example.org", "calendar", "nobody@example.org") == 1
