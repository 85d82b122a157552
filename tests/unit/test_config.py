"""Configuration: defaults, file, environment overrides, and errors that name the key."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ugem.cli import EXIT_PIPE
from ugem.commands.config import example_text
from ugem.core.config import Config, describe, load_config
from ugem.core.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "ugem.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_embedded_defaults_match_the_contract() -> None:
    config = load_config(None, env={})
    assert config.smtp.listen == "127.0.0.1:2525"
    assert config.admin.listen == "127.0.0.1:8025"
    assert config.node.data_dir == "./var"
    assert config.store_url == f"sqlite:///{Path('var/registry.db').resolve()}"
    assert config.delivery.queue_lifetime == 5 * 86400


def test_file_values_are_read_and_typed(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[smtp]
listen = "127.0.0.1:2600"
max_recipients = 500
[delivery]
routes = { "Example.ORG." = "127.0.0.1:2526" }
dns_servers = ["127.0.0.1:5353"]
""",
    )
    config = load_config(path, env={})
    assert config.smtp.listen == "127.0.0.1:2600"
    assert config.smtp.max_recipients == 500
    assert config.delivery.routes == {"example.org": "127.0.0.1:2526"}
    assert config.delivery.dns_servers == ["127.0.0.1:5353"]


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[smtp]\nmax_recipients = 500\n")
    env = {
        "UGEM_SMTP_MAX_RECIPIENTS": "700",
        "UGEM_SMTP_NORMALIZE_LINE_ENDINGS": "yes",
        "UGEM_DELIVERY_DNS_SERVERS": "127.0.0.1:53, 127.0.0.2",
        "UGEM_DELIVERY_ROUTES": "a.example=127.0.0.1:1,b.example=127.0.0.1:2",
    }
    config = load_config(path, env=env)
    assert config.smtp.max_recipients == 700
    assert config.smtp.normalize_line_endings is True
    assert config.delivery.dns_servers == ["127.0.0.1:53", "127.0.0.2"]
    assert config.delivery.routes == {"a.example": "127.0.0.1:1", "b.example": "127.0.0.1:2"}


@pytest.mark.parametrize(
    ("text", "env", "named", "allowed"),
    [
        ("[smtp]\nmax_recipients = 5\n", {}, "smtp.max_recipients", "from 100 to 100000"),
        ('[smtp]\nmax_recipients = "many"\n', {}, "smtp.max_recipients", "expected a number"),
        ('[smtp]\nlisten = "nowhere"\n', {}, "smtp.listen", "host:port"),
        ('[smtp]\nlisten = "127.0.0.1:70000"\n', {}, "smtp.listen", "0 to 65535"),
        ("[smtp]\nmax_recipient = 100\n", {}, "smtp.max_recipient", "allowed keys"),
        ("[smpt]\n", {}, "smpt", "allowed sections"),
        ('[store]\nurl = "mysql://x"\n', {}, "store.url", "sqlite:///path or redis://"),
        ('[delivery]\nroutes = { "x.org" = "nohost" }\n', {}, "delivery.routes", "host:port"),
        ('[log]\nlevel = "loud"\n', {}, "log.level", "one of debug, info"),
        ("", {"UGEM_SMTP_COMMAND_TIMEOUT": "0"}, "UGEM_SMTP_COMMAND_TIMEOUT", "from 1 to 3600"),
        ("", {"UGEM_ADMIN_ENABLED": "perhaps"}, "UGEM_ADMIN_ENABLED", "true or false"),
        ("[admin]\nheader_timeout = nan\n", {}, "admin.header_timeout", "a finite number"),
        ("", {"UGEM_ADMIN_BODY_TIMEOUT": "nan"}, "UGEM_ADMIN_BODY_TIMEOUT", "a finite number"),
        ("[smtp\n", {}, "--config", "expected a TOML file"),
        ('[reputation]\ndnsbl_zones = ["not a zone"]\n', {}, "reputation.dnsbl_zones", "domain"),
        ('[reputation]\ndnsbl_zones = "zen.spamhaus.org"\n', {}, "reputation.dnsbl_zones", "list"),
        ("[reputation]\ninterval = 10\n", {}, "reputation.interval", "from 60 to 86400"),
        ("", {"UGEM_REPUTATION_TIMEOUT": "0"}, "UGEM_REPUTATION_TIMEOUT", "from 0.1 to 60"),
        ("[delivery]\nmin_backoff = 5000\n", {}, "delivery.max_backoff", "min_backoff (5000)"),
        ("[delivery]\nmax_backoff = 60\n", {}, "delivery.max_backoff", "at least delivery.min"),
    ],
)
def test_bad_values_name_the_key_and_what_is_allowed(
    tmp_path: Path, text: str, env: dict[str, str], named: str, allowed: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path, env=env)
    assert named in str(info.value)
    assert allowed in str(info.value)


def test_every_knob_is_documented_with_bounds_or_choices() -> None:
    for section, key, default, doc in describe():
        assert len(doc) > 20, f"{section}.{key} lacks documentation"
        if isinstance(default, int | float) and not isinstance(default, bool):
            assert "Range" in doc, f"{section}.{key} has no bounds"


def test_shipped_example_is_current_and_loads() -> None:
    shipped = (ROOT / "ugem.example.toml").read_text(encoding="utf-8")
    assert shipped == example_text(), "regenerate with: ugem config example > ugem.example.toml"
    loaded = load_config(ROOT / "ugem.example.toml", env={})
    beside = dataclasses.replace(Config().node, data_dir=str(ROOT / "var"))  # from the file's dir
    assert loaded == dataclasses.replace(Config(), node=beside)


def test_cli_exits_non_zero_with_one_clear_line(tmp_path: Path) -> None:
    path = write(tmp_path, "[smtp]\nmax_message_size = 1\n")
    for argv in (
        ["--config", str(path), "config", "check"],
        ["config", "check", "--config", str(path)],
    ):
        proc = subprocess.run(
            [sys.executable, "-m", "ugem.cli", *argv],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        assert proc.returncode == 2
        assert "smtp.max_message_size" in proc.stderr
        assert "Traceback" not in proc.stderr


def test_ugem_config_environment_variable_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[smtp]\nmax_recipients = 3\n")
    proc = subprocess.run(
        [sys.executable, "-m", "ugem.cli", "config", "check"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env={"UGEM_CONFIG": str(path), "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 2
    assert "smtp.max_recipients" in proc.stderr


def test_the_blocklists_watched_by_default_are_live_ones(tmp_path: Path) -> None:
    zones = load_config(None, env={}).reputation.dnsbl_zones
    assert zones[0] == "zen.spamhaus.org" and len(zones) == 5
    assert not {"dnsbl.sorbs.net", "ix.dnsbl.manitu.net"} & set(zones)  # both shut down
    path = write(tmp_path, '[reputation]\ndnsbl_zones = ["BL.Example.", "bl.example"]\n')
    assert load_config(path, env={}).reputation.dnsbl_zones == ["bl.example"]
    env = {"UGEM_REPUTATION_DNSBL_ZONES": "a.example, b.example"}
    assert load_config(path, env=env).reputation.dnsbl_zones == ["a.example", "b.example"]


def test_config_check_reads_the_reply_table_and_names_its_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ugem.cli import main

    table = tmp_path / "replies.toml"
    path = write(tmp_path, f"[reputation]\nreply_patterns = {str(table)!r}\n")
    table.write_text('[[rule]]\nclass = "policy"\nregex = "quux"\nsource = "a test"\n')
    assert main(["--config", str(path), "config", "check"]) == 0
    assert f'reputation.reply_patterns = "{table}"' in capsys.readouterr().out
    table.write_text('[[rule]]\nclass = "bogus"\nregex = "quux"\nsource = "a test"\n')
    assert main(["--config", str(path), "config", "check"]) == 2
    err = capsys.readouterr().err
    assert "reputation.reply_patterns" in err and "rule 1 class: 'bogus'" in err
    assert len(err.strip().splitlines()) == 1


def test_output_cut_short_by_its_reader_ends_quietly(tmp_path: Path) -> None:
    """`ugem config example | head -1`: the reader goes away before the output is written;
    no traceback, no "Exception ignored" at exit, the shell's exit code for SIGPIPE."""
    child = subprocess.Popen(
        [sys.executable, "-m", "ugem.cli", "config", "example"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
        env={**os.environ, "UGEM_CONFIG": ""},
    )
    assert child.stdout is not None and child.stderr is not None
    with child, child.stderr:
        child.stdout.close()  # the reader has gone before a byte was written
        err = child.stderr.read().decode()
        assert child.wait(timeout=60) == EXIT_PIPE
    assert err == ""


def test_a_misspelt_environment_variable_stops_the_load_naming_the_nearest_key() -> None:
    with pytest.raises(ConfigError) as raised:
        load_config(env={"UGEM_SMTP_LISEN": "127.0.0.1:2525"})
    assert str(raised.value).startswith("config UGEM_SMTP_LISEN: ")
    assert "did you mean UGEM_SMTP_LISTEN?" in str(raised.value)
    with pytest.raises(ConfigError, match="no such key"):
        load_config(env={"UGEM_NOTHING_LIKE_IT_AT_ALL_HERE": "1"})
    # the gateway's other variables, the test harness's, and anyone else's are not keys
    other = {"UGEM_CONFIG": "", "UGEM_SUPERVISOR_PID": "1", "UGEM_TEST_X": "1", "HOME": "/"}
    assert load_config(env=other | {"UGEM_SMTP_LISTEN": "127.0.0.1:2600"}).smtp.listen == (
        "127.0.0.1:2600"
    )


def test_config_check_fails_on_a_misspelt_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UGEM_SMTP_LISEN", "x")
    checked = subprocess.run(
        [sys.executable, "-m", "ugem.cli", "config", "check"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert checked.returncode == 2
    assert checked.stderr.startswith("ugem: error: config UGEM_SMTP_LISEN: ")


def test_a_relative_path_in_a_config_file_is_taken_from_the_files_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "ugem.toml").write_text(
        '[node]\ndata_dir = "state"\n[anomaly]\ntrace_file = "t.jsonl"\n'
    )
    (etc / "default.toml").write_text("[smtp]\nmax_connections = 100\n")
    elsewhere = tmp_path / "home"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # an operator's shell, anywhere
    config = load_config(etc / "ugem.toml", env={})
    assert config.data_path == etc / "state"
    assert config.anomaly.trace_file == str(etc / "t.jsonl")
    assert load_config(etc / "default.toml", env={}).data_path == etc / "var"  # the default too
    from_env = load_config(etc / "ugem.toml", env={"UGEM_NODE_DATA_DIR": "mine"})
    assert from_env.data_path == Path("mine")  # the environment's: from the current directory
    assert load_config(None, env={}).data_path == Path("var")  # no file: ./var, as ever
