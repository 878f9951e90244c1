"""The dispatcher's settings as shipped in ``data/dispatch.toml``."""

from __future__ import annotations

import sys

from arrears.channels import outbox, service


def test_a_draining_dispatcher_uses_the_configured_switch_interval_and_restores_the_previous_one() -> None:
    configured = float(service.dispatch_settings()["dispatch"]["switch_interval_ms"]) / 1000
    before = sys.getswitchinterval()
    assert 0 < configured < before  # shorter than Python's 5 ms, or the setting does nothing
    with outbox._switch_interval():
        assert sys.getswitchinterval() == configured
    assert sys.getswitchinterval() == before
