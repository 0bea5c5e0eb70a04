"""pcloud.toml: the schema validates, the written file round-trips, errors are one clear line."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from pcloud import config
from pcloud.cli import Context, run
from pcloud.config import ConfigError
from pcloud.listeners import LISTENERS, render_port_table


def load_text(tmp_path: Path, text: str) -> config.Config:
    path = tmp_path / "pcloud.toml"
    path.write_text(text)
    return config.load(path)


def test_written_file_loads_back_to_the_defaults(tmp_path: Path) -> None:
    loaded = load_text(tmp_path, config.render_default_file("example.org"))
    assert loaded.server.domain == "example.org"
    assert loaded.server.ports == "auto"
    assert loaded.login == config.LoginSection()
    assert loaded.listeners["https"] == config.ListenerSection(True, "", None, "implicit")
    assert loaded.listeners["http"].tls == "none"


def test_every_option_is_in_the_written_file_with_its_help(tmp_path: Path) -> None:
    text = config.render_default_file("example.org")
    for section in ("[server]", "[tls]", "[login]", "[log]", "[listeners.https]"):
        assert section in text
    assert "# address_lockout_failures = 10" in text
    assert "Failed logins in a row from one address" in text


def test_values_are_read(tmp_path: Path) -> None:
    loaded = load_text(
        tmp_path,
        '[server]\ndomain = "pi.lan"\nports = "high"\n'
        "[login]\nlockout_minutes = 5\n"
        '[listeners.http]\nenabled = false\nport = 8081\naddress = "::1"\n',
    )
    assert loaded.server.domain == "pi.lan"
    assert loaded.server.ports == "high"
    assert loaded.login.lockout_minutes == 5
    assert loaded.listeners["http"] == config.ListenerSection(False, "::1", 8081, "none")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "[server]\ndomian = 'x.org'\n",
            "server.domian: unknown key (known: domain, address, ports)",
        ),
        ("[sever]\n", "sever: unknown section"),
        (
            "[listeners.gopher]\n",
            "listeners.gopher: unknown listener (known: "
            + ", ".join(spec.name for spec in LISTENERS)
            + ")",
        ),
        (
            "[listeners.https]\nport = 'abc'\n",
            'listeners.https.port: expected an integer from 0 to 65535, or "auto", got "abc"',
        ),
        (
            "[listeners.https]\nport = 70000\n",
            'listeners.https.port: expected an integer from 0 to 65535, or "auto", got 70000',
        ),
        (
            "[listeners.https]\ntls = 'none'\n",
            'listeners.https.tls: expected one of "implicit", got "none"',
        ),
        (
            "[listeners.http]\nenabled = 'yes'\n",
            'listeners.http.enabled: expected true or false, got "yes"',
        ),
        (
            "[server]\nports = 'fast'\n",
            'server.ports: expected one of "auto", "standard", "high", "ephemeral", got "fast"',
        ),
        ("[server]\ndomain = 'not a domain'\n", "server.domain: expected a domain name"),
        ("[server]\naddress = '300.1.1.1'\n", "server.address: expected an IP address"),
        ("[login]\nlockout_minutes = true\n", "login.lockout_minutes: expected an integer from 1"),
        ("[login]\nlockout_minutes = 0\n", "login.lockout_minutes: expected an integer from 1"),
        ("server = 3\n", "server: expected a table ([server])"),
        ("[server\n", "not valid TOML"),
    ],
)
def test_bad_config_is_one_line_naming_file_and_key(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        load_text(tmp_path, text)
    error = str(raised.value)
    assert "\n" not in error
    assert error.startswith(f"{tmp_path / 'pcloud.toml'}: ")
    assert message in error


def test_serve_stops_on_a_bad_config_with_that_one_line(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "pcloud.toml").write_text("[server]\ndomain = 'example.org'\ncolour = 'blue'\n")
    out, err = io.StringIO(), io.StringIO()
    assert run(["serve", "--data", str(data)], Context(out=out, err=err)) == 1
    assert (
        err.getvalue() == f"pcloud: {data / 'pcloud.toml'}: server.colour: unknown key "
        "(known: domain, address, ports)\n"
    )
    assert not (data / "directory.sqlite3").exists()


def test_config_command_checks_the_file(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "pcloud.toml").write_text(config.render_default_file("example.org"))
    out, err = io.StringIO(), io.StringIO()
    assert run(["config", "--data", str(data)], Context(out=out, err=err)) == 0
    assert "is valid" in out.getvalue()
    (data / "pcloud.toml").write_text("[log]\nlevel = 'loud'\n")
    assert run(["config", "--data", str(data)], Context(out=out, err=err)) == 1
    assert "log.level: expected one of" in err.getvalue()


def test_readme_holds_the_current_reference_and_port_table() -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    assert config.render_reference() in readme, "regenerate it: pcloud config --reference"
    assert render_port_table() in readme
