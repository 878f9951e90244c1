"""Settings, from environment variables prefixed ``ARREARS_`` (or a ``.env`` file)."""

from __future__ import annotations

from functools import lru_cache

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ARREARS_", env_file=".env", extra="ignore")

    database_url: str = "sqlite:///arrears.db"
    locale: str = "zh_CN"
    default_currency: str = "CNY"
    default_timezone: str = "Asia/Shanghai"
    default_rule_pack: str = "cn"
    default_strategy: str = "default"
    host: str = "127.0.0.1"
    port: int = 8000
    import_chunk_rows: int = 100_000
    echo_sql: bool = False
    document_dir: str = "documents"  # stored evidence, letters and court papers
    broker_url: str = "redis://127.0.0.1:6379/0"  # Celery broker and result backend (scale-out)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
