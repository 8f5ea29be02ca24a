"""The [matting] settings: one table, one parsing rule, the old MATTING_* names for one release."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest
from matting import settings
from matting.engine.session import RuntimeOptions
from matting.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _fresh(monkeypatch):
    monkeypatch.setattr(settings, "_warned", set())
    for option in settings.OPTIONS:
        monkeypatch.delenv(option.env, raising=False)
        monkeypatch.delenv(option.old_env, raising=False)


def test_defaults_are_typed():
    assert (
        settings.value("io_timeout_s") == 60.0
        and settings.value("io_attempts") == 3
        and settings.value("max_bytes") == 256 * 1024**2
    )
    assert settings.value("threads") is None  # unset: every core
    assert settings.value("deadlines") is True and settings.value("ui_zip_redirect") is True
    assert settings.value("sla_minutes") is None
    for option in settings.OPTIONS:  # every declared default parses as its declared type
        got = settings.value(option.key)
        expected = {"string": str, "integer": int, "float": float, "boolean": bool}[option.type]
        assert got is None or isinstance(got, expected), option.key


def test_airflow_env_name_sets_a_value(monkeypatch):
    monkeypatch.setenv("AIRFLOW__MATTING__IO_TIMEOUT_S", "7.5")
    monkeypatch.setenv("AIRFLOW__MATTING__THREADS", "2")
    monkeypatch.setenv("AIRFLOW__MATTING__SPIN", "on")
    assert settings.value("io_timeout_s") == 7.5
    opts = RuntimeOptions.from_env()
    assert opts.intra_op_threads == 2 and opts.spin is True
    assert settings.raw("threads") == ("2", "[matting] threads")


@pytest.mark.parametrize(
    ("key", "text", "message"),
    [
        ("io_attempts", "three", r"\[matting\] io_attempts \(AIRFLOW__MATTING__IO_ATTEMPTS\) must be an integer"),
        ("io_attempts", "2.5", "must be an integer"),
        ("io_timeout_s", "fast", "must be a float"),
        ("deadlines", "maybe", "must be true or false"),
    ],
)
def test_a_bad_value_is_a_config_error_naming_the_key(monkeypatch, key, text, message):
    monkeypatch.setenv(settings.BY_KEY[key].env, text)
    with pytest.raises(ConfigError, match=message):
        settings.value(key)


def test_empty_means_unset(monkeypatch):
    """A compose file's ``${VAR:-}`` passes an empty string through."""
    monkeypatch.setenv("AIRFLOW__MATTING__IO_TIMEOUT_S", "")
    monkeypatch.setenv("AIRFLOW__MATTING__THREADS", " ")
    assert settings.value("io_timeout_s") == 60.0 and settings.value("threads") is None


def test_old_name_still_works_with_a_warning_naming_the_new_key(monkeypatch):
    monkeypatch.setenv("MATTING_IO_TIMEOUT_S", "5")
    with pytest.warns(
        settings.MattingDeprecationWarning, match=r"set \[matting\] io_timeout_s .*AIRFLOW__MATTING__IO_TIMEOUT_S"
    ):
        assert settings.value("io_timeout_s") == 5.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once per name, not once per photo
        assert settings.value("io_timeout_s") == 5.0
    monkeypatch.setenv("AIRFLOW__MATTING__IO_TIMEOUT_S", "9")  # the new key wins
    assert settings.value("io_timeout_s") == 9.0


def test_an_airflow_conf_source_is_used_and_its_defaults_do_not_hide_the_old_name(monkeypatch):
    """Airflow answers ``conf.get`` with the provider's declared default when nothing is set; the old
    variable must still count then, and an explicitly configured value must beat it."""

    class Conf:  # the part of Airflow's parser the source calls
        def __init__(self, values):
            self.values = values

        def get(self, section, key, fallback=None):
            assert section == "matting"
            return self.values.get(key, settings.BY_KEY[key].default or fallback)

    monkeypatch.setattr(settings, "_source", settings.airflow_source(Conf({"queue": "gpu"})))
    monkeypatch.setenv("MATTING_POOL", "matting_gpu")
    monkeypatch.setenv("MATTING_QUEUE", "ignored")
    with pytest.warns(settings.MattingDeprecationWarning):
        assert settings.value("pool") == "matting_gpu"
    assert settings.value("queue") == "gpu" and settings.value("io_attempts") == 3
    settings.use_source(None)
    assert settings._source is settings._env_source


def test_no_module_reads_a_setting_from_the_environment_itself():
    """One place, one parsing rule: the package reads no MATTING_* variable outside settings.py."""
    offenders = []
    for path in (ROOT / "plugins" / "matting").rglob("*.py"):
        if path.name == "settings.py":
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if re.search(r"environ|getenv", line) and "MATTING" in line:
                offenders.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    for path in (ROOT / "dags").glob("*.py"):
        if re.search(r"\bMATTING_[A-Z]", path.read_text()):
            offenders.append(str(path.relative_to(ROOT)))
    assert not offenders


def test_every_key_the_code_reads_is_declared():
    text = "\n".join(
        p.read_text() for p in [*(ROOT / "plugins" / "matting").rglob("*.py"), *(ROOT / "dags").glob("*.py")]
    )
    read = set(
        re.findall(
            r'(?:settings\.(?:value|raw|paths)\(|\bsetting\(|catalogue_files\([^,]+,)\s*f?"([a-z0-9_{}]+)"', text
        )
    )
    read = {k.replace("{kind}", kind) for k in read for kind in ("s3", "sftp")}
    assert read and read <= set(settings.BY_KEY), read - set(settings.BY_KEY)
    unread = set(settings.BY_KEY) - read
    assert not unread, f"declared but never read: {unread}"


def test_the_configuration_page_table_is_generated_from_the_settings():
    readme = (ROOT / "docs" / "configuration.md").read_text()
    begin, end = "<!-- settings-table:begin -->\n", "<!-- settings-table:end -->"
    assert begin in readme and end in readme
    table = readme.split(begin, 1)[1].split(end, 1)[0]
    assert table == settings.markdown_table(), "docs/configuration.md is stale: python -m matting config --markdown"


def test_provider_config_follows_airflows_schema_shape():
    section = settings.provider_config()["matting"]
    assert set(section["options"]) == set(settings.BY_KEY)
    for key, option in section["options"].items():
        assert {"description", "version_added", "type", "example", "default"} <= set(option), key
        assert option["type"] in ("string", "integer", "float", "boolean") and option["description"]
