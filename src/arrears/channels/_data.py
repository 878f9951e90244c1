"""Access to the channels domain's packaged data files (TOML parameters, default templates)."""

from __future__ import annotations

import tomllib
from functools import cache
from importlib.resources import files
from typing import Any

_PACKAGE = "arrears.channels"


def read_text(*parts: str) -> str:
    """Text of a file under ``channels/data/``; raises FileNotFoundError if it is not shipped."""
    resource = files(_PACKAGE).joinpath("data", *parts)
    return resource.read_text(encoding="utf-8")


def exists(*parts: str) -> bool:
    """Whether a file is shipped under ``channels/data/``."""
    return files(_PACKAGE).joinpath("data", *parts).is_file()


@cache
def load_toml(name: str) -> dict[str, Any]:
    """A parsed TOML file from ``channels/data/`` (cached: the files are read-only package data)."""
    return tomllib.loads(read_text(name))
