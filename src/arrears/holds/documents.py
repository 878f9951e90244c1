"""Stored documents (dispute evidence, lawyer's letters, court papers): the file goes under the document
directory (``ARREARS_DOCUMENT_DIR``), named by its SHA-256, and a `document` row records where and what.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from sqlalchemy.orm import Session

from arrears.config import get_settings
from arrears.errors import NotFound, ValidationFailed
from arrears.models import Document


def document_root(document_dir: Path | str | None = None) -> Path:
    """The directory documents are stored under (argument, else the configured one)."""
    return Path(document_dir if document_dir is not None else get_settings().document_dir)


def store_document(
    session: Session,
    *,
    content: bytes,
    filename: str,
    kind: str,
    media_type: str = "application/octet-stream",
    case_id: int | None = None,
    account_id: int | None = None,
    dispute_id: int | None = None,
    legal_case_id: int | None = None,
    uploaded_by_id: int | None = None,
    document_dir: Path | str | None = None,
) -> Document:
    """Write ``content`` once (content-addressed: same bytes, same file) and record a document row."""
    if not content:
        raise ValidationFailed("文件为空 / the file is empty", code="empty_document")
    safe_name = Path(filename).name or "document"
    digest = hashlib.sha256(content).hexdigest()
    relative = Path(digest[:2]) / f"{digest}{Path(safe_name).suffix.lower()}"
    target = document_root(document_dir) / relative
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".part")
        partial.write_bytes(content)
        partial.replace(target)
    doc = Document(
        case_id=case_id,
        account_id=account_id,
        dispute_id=dispute_id,
        legal_case_id=legal_case_id,
        kind=kind,
        filename=safe_name,
        media_type=media_type,
        sha256=digest,
        path=relative.as_posix(),
        size_bytes=len(content),
        uploaded_by_id=uploaded_by_id,
    )
    session.add(doc)
    session.flush()
    return doc


def read_document(
    session: Session, *, document_id: int, document_dir: Path | str | None = None
) -> tuple[Document, bytes]:
    """A document row and its bytes, checked against the stored SHA-256."""
    doc = session.get(Document, document_id)
    if doc is None:
        raise NotFound(
            f"文件不存在：{document_id} / document {document_id} not found", code="document_not_found"
        )
    path = document_root(document_dir) / doc.path
    if not path.is_file():
        raise NotFound(
            f"文件已丢失：{doc.path} / document file {doc.path} is missing", code="document_missing"
        )
    content = path.read_bytes()
    if hashlib.sha256(content).hexdigest() != doc.sha256:
        raise ValidationFailed(
            f"文件已被改动：{doc.path} / document {doc.path} does not match its hash",
            code="document_tampered",
        )
    return doc, content
