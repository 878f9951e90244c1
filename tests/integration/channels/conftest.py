"""Fixtures for the channels integration tests (real local SMTP and HTTP servers)."""

from channel_servers import (  # noqa: F401
    self_signed_cert,
    sms_gateway,
    smtp_server,
    starttls_smtp_server,
)
