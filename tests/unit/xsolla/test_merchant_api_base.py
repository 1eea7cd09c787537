"""Where the Xsolla merchant API (transaction reports) is called, from the settings."""

from __future__ import annotations

from pathlib import Path

from caisse.config import Settings


def settings(tmp_path: Path, **env: str) -> Settings:
    return Settings.from_env({"CAISSE_DATA_DIR": str(tmp_path), **env})


def test_production_default_is_api_xsolla_com(tmp_path: Path) -> None:
    assert settings(tmp_path).xsolla_merchant_api_base == "https://api.xsolla.com"


def test_a_custom_store_base_serves_both_apis(tmp_path: Path) -> None:
    s = settings(tmp_path, CAISSE_XSOLLA_API_BASE="http://127.0.0.1:9000/")
    assert s.xsolla_merchant_api_base == "http://127.0.0.1:9000"


def test_explicit_merchant_base_wins(tmp_path: Path) -> None:
    s = settings(
        tmp_path,
        CAISSE_XSOLLA_API_BASE="http://127.0.0.1:9000",
        CAISSE_XSOLLA_MERCHANT_API_BASE="https://merchant.example/",
    )
    assert s.xsolla_merchant_api_base == "https://merchant.example"
