"""``Settings.from_env``: embedded defaults, generated secrets, refusals, and no secret in logs."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from caisse.config import Secret, Settings, normalize_database_url, redact_url, url_password
from caisse.crypto import SecretBox
from caisse.errors import InvalidRequest

TOKEN = "cat_" + "x" * 40


def env_for(tmp_path: Path, **extra: str) -> dict[str, str]:
    """Only what the test names: no ``.env`` from the working directory, no real environment."""
    return {
        "CAISSE_DATA_DIR": str(tmp_path / "data"),
        "CAISSE_ENV_FILE": str(tmp_path / "absent.env"),
        **extra,
    }


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_defaults_are_sqlite_in_the_data_folder(tmp_path: Path) -> None:
    s = Settings.from_env(env_for(tmp_path))
    assert s.data_dir == (tmp_path / "data").resolve()
    assert s.database_url == f"sqlite:///{s.data_dir / 'caisse.db'}"
    assert s.is_sqlite
    assert s.public_url == "http://127.0.0.1:8000"
    assert s.stripe_api_base is None
    assert s.in_process_worker is True
    assert s.allow_private_targets is False


def test_operator_token_and_master_key_are_generated_once_with_mode_0600(
    tmp_path: Path,
) -> None:
    first = Settings.from_env(env_for(tmp_path))
    assert set(first.generated) == {"admin_token", "master_key"}
    token_file, key_file = first.data_dir / "admin_token", first.data_dir / "master_key"
    assert mode(token_file) == 0o600
    assert mode(key_file) == 0o600
    assert mode(first.data_dir) == 0o700  # the folder also holds the SQLite database
    assert first.admin_token.reveal().startswith("cat_")
    assert len(first.admin_token.reveal()) >= 40
    assert token_file.read_text().strip() == first.admin_token.reveal()
    SecretBox(first.master_keys)  # a valid Fernet key

    second = Settings.from_env(env_for(tmp_path))
    assert second.generated == ()
    assert second.admin_token == first.admin_token
    assert second.master_keys == first.master_keys


def test_without_create_missing_an_absent_secret_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest):
        Settings.from_env(env_for(tmp_path), create_missing=False)
    assert not (tmp_path / "data" / "admin_token").exists()


def test_explicit_values_are_used_and_nothing_is_generated(tmp_path: Path) -> None:
    key = Fernet.generate_key().decode()
    s = Settings.from_env(env_for(tmp_path, CAISSE_ADMIN_TOKEN=TOKEN, CAISSE_MASTER_KEY=key))
    assert s.generated == ()
    assert s.admin_token.reveal() == TOKEN
    assert [k.reveal() for k in s.master_keys] == [key]
    assert not (tmp_path / "data" / "admin_token").exists()


@pytest.mark.parametrize("token", ["changeme", "admin", "secret", "short-token", "x" * 15])
def test_placeholder_or_short_operator_token_is_refused(tmp_path: Path, token: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        Settings.from_env(env_for(tmp_path, CAISSE_ADMIN_TOKEN=token))
    assert token not in info.value.message  # the refusal does not echo the value


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgres://u:p@db:5432/caisse", "postgresql+psycopg://u:p@db:5432/caisse"),
        ("postgresql://u@db/caisse", "postgresql+psycopg://u@db/caisse"),
        ("postgresql+psycopg://u@db/caisse", "postgresql+psycopg://u@db/caisse"),
        ("sqlite:////var/lib/caisse.db", "sqlite:////var/lib/caisse.db"),
    ],
)
def test_database_urls_are_normalised_to_psycopg(tmp_path: Path, url: str, expected: str) -> None:
    assert normalize_database_url(url) == expected
    s = Settings.from_env(env_for(tmp_path, CAISSE_DATABASE_URL=url))
    assert s.database_url == expected
    assert s.is_sqlite == expected.startswith("sqlite")


def test_secret_never_shows_itself() -> None:
    value = "sk_live_" + "9" * 24
    secret = Secret(value)
    for shown in (repr(secret), str(secret), f"{secret}", f"{secret!r}", f"{secret}"):
        assert value not in shown
        assert "*" in shown
    assert secret.reveal() == value
    assert secret == Secret(value)
    assert secret != Secret(value + "0")
    assert secret != value  # a Secret is not equal to its plain string


def test_settings_repr_shows_no_secret(tmp_path: Path) -> None:
    s = Settings.from_env(
        env_for(
            tmp_path,
            CAISSE_SMTP_URL="smtp://u:hunter2-pass@mail:587",
            CAISSE_DATABASE_URL="postgres://caisse:db-pass-42@db.internal:5432/caisse",
            CAISSE_STRIPE_CONNECT_SECRET_KEY="sk_test_connect123456789",
        )
    )
    for text in (repr(s), str(s), f"{s}", f"{s!r}", repr([s])):
        assert s.admin_token.reveal() not in text
        assert s.master_keys[0].reveal() not in text
        assert "hunter2-pass" not in text
        assert "db-pass-42" not in text
        assert "sk_test_connect" not in text
        assert "postgresql+psycopg://caisse:***@db.internal:5432/caisse" in text
    # the real values stay usable
    assert s.database_url == "postgresql+psycopg://caisse:db-pass-42@db.internal:5432/caisse"
    assert s.smtp_url is not None
    assert s.smtp_url.reveal() == "smtp://u:hunter2-pass@mail:587"


def test_describe_is_what_an_operator_may_see(tmp_path: Path) -> None:
    s = Settings.from_env(
        env_for(
            tmp_path,
            CAISSE_SMTP_URL="smtp://u:hunter2-pass@mail:587",
            CAISSE_DATABASE_URL="postgresql://caisse:db-pass-42@db:5432/caisse",
            CAISSE_STRIPE_CONNECT_WEBHOOK_SECRET="whsec_aaaaaaaaaaaa,whsec_bbbbbbbbbbbb",
        )
    )
    view = s.describe()
    shown = " ".join(view.values())
    for secret in ("hunter2-pass", "db-pass-42", "whsec_", s.admin_token.reveal()):
        assert secret not in shown
    assert s.master_keys[0].reveal() not in shown
    assert view["database_url"] == "postgresql+psycopg://caisse:***@db:5432/caisse"
    assert view["smtp_url"] == "smtp://u:***@mail:587"  # host and user stay, to check them
    assert view["admin_token"] == "***"
    assert view["stripe_connect_webhook_secrets"] == "*** (2 set)"
    assert view["public_url"] == "http://127.0.0.1:8000"
    assert "generated" not in view


@pytest.mark.parametrize(
    ("url", "shown", "password"),
    [
        ("postgresql+psycopg://u:pw@db/caisse", "postgresql+psycopg://u:***@db/caisse", "pw"),
        ("smtp://mailer:p@ss/w:rd@mail:587", "smtp://mailer:***@mail:587", "p@ss/w:rd"),
        ("postgresql://u@db:5432/caisse", "postgresql://u@db:5432/caisse", None),
        ("postgresql://db:5432/caisse", "postgresql://db:5432/caisse", None),
        ("sqlite:////var/lib/caisse.db", "sqlite:////var/lib/caisse.db", None),
        ("postgresql://db/c?sslpassword=s3&x=1", "postgresql://db/c?sslpassword=***&x=1", None),
        ("https://h/x?api_key=k&token=t", "https://h/x?api_key=***&token=***", None),
        (
            "https://www.googleapis.com/x509/securetoken@system.gserviceaccount.com",
            "https://www.googleapis.com/x509/securetoken@system.gserviceaccount.com",
            None,
        ),
    ],
)
def test_redact_url_masks_passwords(url: str, shown: str, password: str | None) -> None:
    assert redact_url(url) == shown
    assert url_password(url) == password


def test_dotenv_file_is_read_and_the_environment_wins(tmp_path: Path) -> None:
    dotenv = tmp_path / "caisse.env"
    dotenv.write_text(
        "# comment\n"
        "\n"
        f"CAISSE_ADMIN_TOKEN='{TOKEN}'\n"
        'CAISSE_PUBLIC_URL="https://pay.example.com/"\n'
        "CAISSE_LOG_LEVEL=debug\n"
        "not a line\n",
        encoding="utf-8",
    )
    s = Settings.from_env(
        {
            "CAISSE_DATA_DIR": str(tmp_path / "data"),
            "CAISSE_ENV_FILE": str(dotenv),
            "CAISSE_LOG_LEVEL": "warning",
        }
    )
    assert s.admin_token.reveal() == TOKEN
    assert s.public_url == "https://pay.example.com"  # quotes and trailing slash removed
    assert s.log_level == "WARNING"  # the real environment overrides the file
    assert "admin_token" not in s.generated


def test_several_master_keys_are_comma_separated_and_the_first_encrypts(tmp_path: Path) -> None:
    new, old = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    s = Settings.from_env(
        env_for(tmp_path, CAISSE_ADMIN_TOKEN=TOKEN, CAISSE_MASTER_KEY=f" {new} , {old},")
    )
    assert [k.reveal() for k in s.master_keys] == [new, old]
    token = SecretBox(s.master_keys).encrypt("whsec_abc")
    assert Fernet(new.encode()).decrypt(token.encode()) == b"whsec_abc"
    legacy = Fernet(old.encode()).encrypt(b"sk_test_old").decode()
    assert SecretBox(s.master_keys).decrypt(legacy) == "sk_test_old"


def test_flags_and_lists(tmp_path: Path) -> None:
    s = Settings.from_env(
        env_for(
            tmp_path,
            CAISSE_NO_WORKER="true",
            CAISSE_ALLOW_PRIVATE_TARGETS="1",
            CAISSE_TRUSTED_PROXIES="10.0.0.1, 10.0.0.2,",
            CAISSE_WORKER_POLL_INTERVAL="0.25",
            CAISSE_LOG_FORMAT="text",
        )
    )
    assert s.in_process_worker is False
    assert s.allow_private_targets is True
    assert s.trusted_proxies == ("10.0.0.1", "10.0.0.2")
    assert s.worker_poll_interval == 0.25
    assert s.log_json is False


def test_empty_variables_count_as_unset(tmp_path: Path) -> None:
    s = Settings.from_env(env_for(tmp_path, CAISSE_DATABASE_URL="", CAISSE_ADMIN_TOKEN=""))
    assert s.is_sqlite
    assert "admin_token" in s.generated


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CAISSE_WORKER_POLL_INTERVAL", "fast"),
        ("CAISSE_WORKER_POLL_INTERVAL", "0"),
        ("CAISSE_JOB_LEASE_SECONDS", "nan"),
        ("CAISSE_JOB_LEASE_SECONDS", "1"),
        ("CAISSE_WORKER_PEEK_INTERVAL", "-0.1"),
        ("CAISSE_WORKER_PEEK_INTERVAL", "soon"),
    ],
)
def test_a_bad_number_is_a_configuration_error_naming_the_variable(
    tmp_path: Path, name: str, value: str
) -> None:
    with pytest.raises(InvalidRequest) as refused:
        Settings.from_env(env_for(tmp_path, **{name: value, "CAISSE_ADMIN_TOKEN": TOKEN}))
    assert name in refused.value.message


def test_numbers_are_read(tmp_path: Path) -> None:
    s = Settings.from_env(
        env_for(tmp_path, CAISSE_WORKER_POLL_INTERVAL="0.2", CAISSE_JOB_LEASE_SECONDS="300")
    )
    assert (s.worker_poll_interval, s.job_lease_seconds) == (0.2, 300.0)
    assert s.worker_peek_interval == 0.02  # the default: an idle worker looks 50 times a second
    off = Settings.from_env(env_for(tmp_path, CAISSE_WORKER_PEEK_INTERVAL="0"))
    assert off.worker_peek_interval == 0.0  # looks turned off


def test_sqlite_folder_made_by_migrate_is_private(tmp_path: Path) -> None:
    from caisse.storage.migrate import upgrade

    upgrade(f"sqlite:///{tmp_path / 'fresh' / 'caisse.db'}")
    assert mode(tmp_path / "fresh") == 0o700
