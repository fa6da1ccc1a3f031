"""Encrypted, checksummed archives of a council's schema (used by offboarding and export).

An archive is a tar of one CSV file per table (PostgreSQL COPY) and a manifest with row
counts, applied migrations and the SHA-256 of each table file. The tar is sealed in 1 MiB
chunks with AES-256-GCM under the key-encryption key; each chunk's associated data binds the
archive id, its position and whether it is the last, so chunks cannot be dropped, reordered
or truncated without the opening failing.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import struct
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings
from django.db import connection

MAGIC = b"PATCHWORK-ARCHIVE-1\n"
CHUNK = 1024 * 1024


class ArchiveError(Exception):
    """The archive is damaged, was sealed under another key, or is not an archive."""


def _chunk_aad(archive_id: bytes, index: int, last: bool) -> bytes:
    return archive_id + struct.pack(">Q?", index, last)


def seal_stream(source: IO[bytes], target: IO[bytes]) -> None:
    aead = AESGCM(settings.KEY_ENCRYPTION_KEY)
    archive_id = os.urandom(16)
    target.write(MAGIC + archive_id)
    index = 0
    chunk = source.read(CHUNK)
    while True:
        following = source.read(CHUNK)
        last = not following
        nonce = os.urandom(12)
        sealed = aead.encrypt(nonce, chunk, _chunk_aad(archive_id, index, last))
        target.write(nonce + struct.pack(">I", len(sealed)) + sealed)
        if last:
            return
        chunk, index = following, index + 1


def open_stream(source: IO[bytes]) -> Iterator[bytes]:
    aead = AESGCM(settings.KEY_ENCRYPTION_KEY)
    if source.read(len(MAGIC)) != MAGIC:
        raise ArchiveError("This file is not a Patchwork archive")
    archive_id = source.read(16)
    index = 0
    while True:
        header = source.read(16)
        if not header:
            raise ArchiveError("The archive is truncated: its last part is missing")
        nonce, (length,) = header[:12], struct.unpack(">I", header[12:])
        sealed = source.read(length)
        for last in (False, True):
            try:
                yield aead.decrypt(nonce, sealed, _chunk_aad(archive_id, index, last))
            except Exception:  # noqa: S112 - InvalidTag: try the other position flag
                continue
            if last:
                if source.read(1):
                    raise ArchiveError("The archive has data after its last part")
                return
            break
        else:
            raise ArchiveError(
                "The archive cannot be opened: it is damaged or was sealed under another key"
            )
        index += 1


def schema_tables(schema_name: str) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = %s ORDER BY tablename",
            [schema_name],
        )
        return [row[0] for row in cursor.fetchall()]


def schema_export(schema_name: str, manifest: dict, target: Path) -> Path:
    """Write the sealed archive of every table in `schema_name` to `target`."""
    target.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    tables: dict[str, dict] = {}
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for table in schema_tables(schema_name):
            data = io.BytesIO()
            raw = connection.connection
            if raw is None:
                connection.ensure_connection()
                raw = connection.connection
            with raw.cursor().copy(
                f'COPY "{schema_name}"."{table}" TO STDOUT WITH (FORMAT csv, HEADER true)'
            ) as copy:
                for block in copy:
                    data.write(block)
            content = data.getvalue()
            tables[table] = {
                "sha256": hashlib.sha256(content).hexdigest(),
                "rows": max(content.count(b"\n") - 1, 0),
            }
            info = tarfile.TarInfo(f"tables/{table}.csv")
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
        body = json.dumps({**manifest, "schema": schema_name, "tables": tables}, indent=2)
        info = tarfile.TarInfo("manifest.json")
        info.size = len(body.encode())
        tar.addfile(info, io.BytesIO(body.encode()))
    buffer.seek(0)
    partial = target.with_suffix(target.suffix + ".partial")
    with partial.open("wb") as out:
        seal_stream(buffer, out)
        out.flush()
        os.fsync(out.fileno())
    partial.rename(target)
    return target


def archive_manifest(path: Path) -> dict:
    """Open an archive, check every table file against its checksum, return the manifest."""
    with path.open("rb") as source:
        plain = b"".join(open_stream(source))
    with tarfile.open(fileobj=io.BytesIO(plain), mode="r:gz") as tar:
        member = tar.extractfile("manifest.json")
        if member is None:
            raise ArchiveError("The archive has no manifest")
        manifest = json.loads(member.read())
        for table, facts in manifest["tables"].items():
            content = tar.extractfile(f"tables/{table}.csv")
            if content is None or hashlib.sha256(content.read()).hexdigest() != facts["sha256"]:
                raise ArchiveError(f"Table {table} in the archive does not match its checksum")
    return manifest
