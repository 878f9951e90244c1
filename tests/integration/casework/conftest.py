"""Fixtures for the case work tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from casework_builders import Book, make_book
from sqlalchemy.orm import Session


@pytest.fixture
def book(session: Session, tmp_path: Path) -> Book:
    return make_book(session, tmp_path)
