"""Encrypted, checksummed archives of PostgreSQL schemas: one council (export, offboarding)
or a whole deployment (backup).

An archive streams to disk as it is written, so a county-scale council never has to fit in
memory. Inside, a gzip stream of frames: a header, then for each schema its tables, each
table's rows as PostgreSQL COPY text (one row per line) with its row count and SHA-256, and
last a manifest of everything (schemas, tables, row counts, checksums, applied migrations).

The gzip stream is sealed in 1 MiB chunks with AES-256-GCM under the key-encryption key;
each chunk's associated data binds the archive id, its position and whether it is the last,
so chunks cannot be dropped, reordered or truncated without the opening failing. Readers
check every table against its checksum as they stream it, and the manifest against what
they saw.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import struct
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from graphlib import CycleError, TopologicalSorter
from pathlib import Path
from typing import IO, Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings
from django.db import connection, transaction

from tenants.db import sql_identifier

MAGIC = b"PATCHWORK-ARCHIVE-2\n"
FORMAT = 2
CHUNK = 1024 * 1024
# Rows are framed in blocks of about this size: big enough to keep framing cheap, small
# enough that a reader never holds more than a block of one table.
DATA_BLOCK = 256 * 1024
# Fast compression: backups are written nightly while the deployment serves, and CSV-like
# COPY text already shrinks well at the lowest levels.
COMPRESS_LEVEL = 3

HEADER, SCHEMA, TABLE, DATA, TABLE_END, MANIFEST = b"H", b"S", b"T", b"D", b"E", b"M"
_FRAME = struct.Struct(">cI")


class ArchiveError(Exception):
    """The archive is damaged, was sealed under another key, or is not an archive."""


class SchemaGone(Exception):
    """A schema listed in the snapshot was dropped (a council offboarded) before its turn
    to be read: the archive would not agree with its own platform tables."""


def _chunk_aad(archive_id: bytes, index: int, last: bool) -> bytes:
    return archive_id + struct.pack(">Q?", index, last)


class SealedWriter(io.RawIOBase):
    """A write-only stream that seals what it is given in AES-GCM chunks as they fill."""

    def __init__(self, target: IO[bytes]) -> None:
        self._target = target
        self._aead = AESGCM(settings.KEY_ENCRYPTION_KEY)
        self._archive_id = os.urandom(16)
        self._buffer = bytearray()
        self._index = 0
        target.write(MAGIC + self._archive_id)

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self._buffer += data
        # Keep at least one byte back: the last chunk must be sealed as the last.
        while len(self._buffer) > CHUNK:
            self._seal(bytes(self._buffer[:CHUNK]), last=False)
            del self._buffer[:CHUNK]
        return len(data)

    def _seal(self, chunk: bytes, *, last: bool) -> None:
        nonce = os.urandom(12)
        aad = _chunk_aad(self._archive_id, self._index, last)
        sealed = self._aead.encrypt(nonce, chunk, aad)
        self._target.write(nonce + struct.pack(">I", len(sealed)) + sealed)
        self._index += 1

    def close(self) -> None:
        if not self.closed:
            self._seal(bytes(self._buffer), last=True)
            self._buffer.clear()
        super().close()


def seal_stream(source: IO[bytes], target: IO[bytes]) -> None:
    """Seal everything readable from `source` into `target`."""
    writer = SealedWriter(target)
    while block := source.read(CHUNK):
        writer.write(block)
    writer.close()


def open_stream(source: IO[bytes]) -> Iterator[bytes]:
    """The plain chunks of a sealed stream, each checked before it is given out."""
    aead = AESGCM(settings.KEY_ENCRYPTION_KEY)
    if source.read(len(MAGIC)) != MAGIC:
        raise ArchiveError("This file is not a Patchwork archive (or is from an older format)")
    archive_id = source.read(16)
    index = 0
    while True:
        header = source.read(16)
        if len(header) < 16:
            raise ArchiveError("The archive is truncated: its last part is missing")
        nonce, (length,) = header[:12], struct.unpack(">I", header[12:])
        sealed = source.read(length)
        if len(sealed) < length:
            raise ArchiveError("The archive is truncated: its last part is missing")
        for last in (False, True):
            try:
                plain = aead.decrypt(nonce, sealed, _chunk_aad(archive_id, index, last))
            except InvalidTag:
                continue
            yield plain
            if last:
                if source.read(1):
                    raise ArchiveError("The archive has data after its last part")
                return
            break
        else:
            raise ArchiveError(
                "The archive cannot be opened: it is damaged or was sealed under another "
                "key-encryption key"
            )
        index += 1


class _OpenedReader(io.RawIOBase):
    """The plain bytes of a sealed file, as a readable stream for gzip."""

    def __init__(self, source: IO[bytes]) -> None:
        self._chunks = open_stream(source)
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            try:
                self._pending = next(self._chunks)
            except StopIteration:
                return 0
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


# --- Reading a schema from the database ---


def schema_tables(schema_name: str) -> list[str]:
    """The schema's tables, parents before the tables whose foreign keys point at them, so
    that loading them in this order never meets a row whose parent is still missing."""
    with connection.cursor() as cursor:
        # Found through pg_depend's index on what each object depends on (its schema):
        # pg_class has no index by schema, and reading all of it for each council makes a
        # backup of N councils take N^2 time (pg_class holds 325,000 rows at 1,000).
        cursor.execute(
            """
            SELECT c.oid, c.relname
            FROM pg_depend d JOIN pg_class c ON c.oid = d.objid
            WHERE d.classid = 'pg_class'::regclass
              AND d.refclassid = 'pg_namespace'::regclass
              AND d.refobjid = (SELECT oid FROM pg_namespace WHERE nspname = %s)
              AND c.relkind IN ('r', 'p')
            ORDER BY c.relname
            """,
            [schema_name],
        )
        found = cursor.fetchall()
        names = dict(found)
        tables = [name for _, name in found]
        cursor.execute(
            "SELECT conrelid, confrelid FROM pg_constraint "
            "WHERE contype = 'f' AND conrelid = ANY(%s)",
            [list(names)],
        )
        edges = [
            (names[child], names[parent]) for child, parent in cursor.fetchall() if parent in names
        ]
    graph: dict[str, set[str]] = {table: set() for table in tables}
    for child, parent in edges:
        if child != parent and child in graph and parent in graph:
            graph[child].add(parent)
    sorter = TopologicalSorter(graph)
    try:
        sorter.prepare()
    except CycleError:
        # Circular foreign keys are deferrable in Django, checked at commit: any order loads.
        return tables
    ordered: list[str] = []
    while sorter.is_active():
        ready = sorted(sorter.get_ready())
        ordered.extend(ready)
        sorter.done(*ready)
    return ordered


def table_columns(schema_name: str, table: str) -> list[str]:
    """The columns COPY can write back: generated columns are computed again on load."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT a.attname FROM pg_attribute a
            WHERE a.attrelid = format('%%I.%%I', %s::text, %s::text)::regclass
              AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
            ORDER BY a.attnum
            """,
            [schema_name, table],
        )
        return [row[0] for row in cursor.fetchall()]


def applied_migrations(schema_name: str) -> list[list[str]]:
    with connection.cursor() as cursor:
        table = sql_identifier(schema_name, "django_migrations")
        cursor.execute("SELECT to_regclass(%s)", [table])
        if cursor.fetchone()[0] is None:
            return []
        cursor.execute(f"SELECT app, name FROM {table} ORDER BY app, name")  # noqa: S608
        return [[app, name] for app, name in cursor.fetchall()]


def column_list(columns: list[str]) -> str:
    return ", ".join(sql_identifier(column) for column in columns)


def _raw_connection() -> Any:
    connection.ensure_connection()
    return connection.connection


# --- Writing ---


class ArchiveWriter:
    """Writes an archive to `target`, streaming: frames -> gzip -> sealed chunks -> file.

    The file appears under its name only once complete (written as `.partial`, synced,
    renamed), readable by its owner alone."""

    def __init__(self, target: Path, header: dict[str, Any]) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        self.target = target
        self._partial = target.with_name(target.name + ".partial")
        descriptor = os.open(self._partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        self._file = os.fdopen(descriptor, "wb")
        self._sealed = SealedWriter(self._file)
        self._gzip = gzip.GzipFile(
            fileobj=self._sealed, mode="wb", compresslevel=COMPRESS_LEVEL, mtime=0
        )
        self.header = {"format": FORMAT, **header}
        self.schemas: dict[str, dict[str, Any]] = {}
        self._frame(HEADER, json.dumps(self.header).encode())

    def _frame(self, kind: bytes, payload: bytes) -> None:
        self._gzip.write(_FRAME.pack(kind, len(payload)))
        self._gzip.write(payload)

    def schema(self, schema_name: str, info: dict[str, Any]) -> dict[str, Any]:
        """Write every table of `schema_name`; return what the manifest says about it."""
        entry: dict[str, Any] = {
            **info,
            "migrations": applied_migrations(schema_name),
            "tables": {},
        }
        self._frame(SCHEMA, json.dumps({"name": schema_name, "info": info}).encode())
        for table in schema_tables(schema_name):
            entry["tables"][table] = self._table(schema_name, table)
        self.schemas[schema_name] = entry
        return entry

    def _table(self, schema_name: str, table: str) -> dict[str, Any]:
        columns = table_columns(schema_name, table)
        self._frame(TABLE, json.dumps({"name": table, "columns": columns}).encode())
        digest = hashlib.sha256()
        rows = size = 0
        block: list[bytes] = []
        block_size = 0
        sql = f"COPY {sql_identifier(schema_name, table)} ({column_list(columns)}) TO STDOUT"
        with _raw_connection().cursor() as cursor, cursor.copy(sql) as copy:
            # PostgreSQL sends one message per row; they are gathered into blocks.
            for data in copy:
                data = bytes(data)
                digest.update(data)
                # COPY text escapes newlines inside values: each raw newline ends one row.
                rows += data.count(b"\n")
                block.append(data)
                block_size += len(data)
                if block_size >= DATA_BLOCK:
                    self._frame(DATA, b"".join(block))
                    size += block_size
                    block, block_size = [], 0
        if block:
            self._frame(DATA, b"".join(block))
            size += block_size
        facts = {"rows": rows, "sha256": digest.hexdigest(), "bytes": size, "columns": columns}
        self._frame(TABLE_END, json.dumps({"rows": rows, "sha256": facts["sha256"]}).encode())
        return facts

    def finish(self) -> dict[str, Any]:
        """Write the manifest, seal the last chunk, and put the file in place."""
        manifest = {**self.header, "schemas": self.schemas}
        self._frame(MANIFEST, json.dumps(manifest).encode())
        self._gzip.close()
        self._sealed.close()
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        self._partial.rename(self.target)
        return manifest

    def abandon(self) -> None:
        self._file.close()
        self._partial.unlink(missing_ok=True)


@contextmanager
def consistent_snapshot() -> Iterator[None]:
    """A transaction that sees every schema as of one instant (REPEATABLE READ), so an
    archive never holds a child row whose parent was written after its table was read.
    Every table it reads stays locked until it ends: for one council, not a deployment."""
    outermost = not connection.in_atomic_block
    with transaction.atomic():
        if outermost:
            with connection.cursor() as cursor:
                # Allowed after django-tenants' SET search_path: SET is not a query.
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        yield


_SNAPSHOT_ID = re.compile(r"^[0-9A-F]+-[0-9A-F]+(-[0-9]+)?$")


@contextmanager
def exported_snapshot() -> Iterator[str]:
    """The id of a snapshot of the whole database, held open (and readable by
    `snapshot_transaction`) until the block ends.

    A second connection opens a REPEATABLE READ transaction and exports its snapshot with
    `pg_export_snapshot()`. It reads no table, so it holds no lock on one: each schema is then
    read in a short transaction of its own that adopts the snapshot, and its locks go at its
    commit. Every schema is still seen as of the same instant, yet the lock table only ever
    holds one schema's tables (a single transaction over 1,000 councils would need 41,000
    locks, beyond PostgreSQL's default `max_locks_per_transaction`). Like any long
    snapshot, it keeps VACUUM from removing rows deleted after it began, until it ends."""
    exporter = connection.get_new_connection(connection.get_connection_params())
    try:
        exporter.autocommit = True
        # Waiting between statements is this session's whole job: the deployment's
        # idle_in_transaction_session_timeout would end the snapshot midway through.
        exporter.execute("SET idle_in_transaction_session_timeout = 0")
        exporter.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        row = exporter.execute("SELECT pg_export_snapshot()").fetchone()
        yield row[0]
    finally:
        exporter.close()


@contextmanager
def snapshot_transaction(snapshot: str) -> Iterator[None]:
    """A read-only transaction on the default connection that sees the database exactly as
    `exported_snapshot` does; the locks it takes are released when it ends."""
    if not _SNAPSHOT_ID.match(snapshot):
        raise ValueError(f"Not a snapshot id: {snapshot!r}")
    with transaction.atomic():
        with connection.cursor() as cursor:
            # Both must come before the transaction's first query (SET is not one).
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            cursor.execute(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
        yield


def _schema_still_here(schema_name: str) -> None:
    # The catalog is read as it is now, not as of the snapshot.
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", [schema_name])
        if cursor.fetchone() is None:
            raise SchemaGone(
                f"The schema {schema_name} was removed while the backup was running (a "
                "council offboarded?). No archive was written: run the backup again."
            )


def archive_write(
    target: Path,
    header: dict[str, Any],
    schemas: Callable[[], list[tuple[str, dict[str, Any]]]],
) -> dict[str, Any]:
    """Write the schemas named by `schemas()` (name, what to say about it) into one sealed
    archive at `target`, all as of one instant. The list is made in the same snapshot as
    the rows, so it agrees with the platform tables in the archive. Returns the manifest.

    Each schema is read in a transaction of its own under one exported snapshot
    (`exported_snapshot`), so locks are held on one schema's tables at a time. Called
    inside a transaction (e.g. offboarding), it reads everything in that transaction."""
    writer = ArchiveWriter(target, header)
    try:
        if connection.in_atomic_block:
            with consistent_snapshot():
                for schema_name, info in schemas():
                    writer.schema(schema_name, info)
        else:
            with exported_snapshot() as snapshot:
                with snapshot_transaction(snapshot):
                    listed = schemas()
                for schema_name, info in listed:
                    with snapshot_transaction(snapshot):
                        _schema_still_here(schema_name)
                        writer.schema(schema_name, info)
        return writer.finish()
    except BaseException:
        writer.abandon()
        raise


def schema_export(schema_name: str, manifest: dict[str, Any], target: Path) -> Path:
    """Write the sealed archive of every table in `schema_name` to `target`."""
    info = {"role": "council", "council": manifest.get("council")}
    archive_write(target, {"kind": "council", **manifest}, lambda: [(schema_name, info)])
    return target


# --- Reading ---


class TableSection:
    """One table as it streams out of an archive; its blocks are checked against the
    table's checksum and row count when the last one has been read."""

    def __init__(self, name: str, columns: list[str], reader: ArchiveReader) -> None:
        self.name = name
        self.columns = columns
        self._reader = reader
        self._blocks = self._read_blocks()
        self.rows: int | None = None

    def blocks(self) -> Iterator[bytes]:
        return self._blocks

    def _read_blocks(self) -> Iterator[bytes]:
        digest = hashlib.sha256()
        rows = 0
        while True:
            kind, payload = self._reader.next_frame()
            if kind == DATA:
                digest.update(payload)
                rows += payload.count(b"\n")
                yield payload
                continue
            if kind != TABLE_END:
                raise ArchiveError(f"Table {self.name} in the archive is cut short")
            facts = json.loads(payload)
            if facts["sha256"] != digest.hexdigest() or facts["rows"] != rows:
                raise ArchiveError(f"Table {self.name} in the archive does not match its checksum")
            self._reader.seen[-1][1][self.name] = {"rows": rows, "sha256": facts["sha256"]}
            self.rows = rows
            return


@dataclass
class SchemaSection:
    name: str
    info: dict[str, Any]
    _reader: ArchiveReader

    def tables(self) -> Iterator[TableSection]:
        while True:
            kind, payload = self._reader.peek_frame()
            if kind != TABLE:
                return
            self._reader.next_frame()
            described = json.loads(payload)
            section = TableSection(described["name"], described["columns"], self._reader)
            yield section
            # Whatever the caller left unread is still read, so every checksum is checked.
            for _ in section.blocks():
                pass


@dataclass
class ArchiveReader:
    """Streams an archive: `header`, then `schemas()` in order, then `manifest`.

    Every table is checked against its checksum as it is read; the manifest is checked
    against what was read. Any damage raises ArchiveError."""

    path: Path
    header: dict[str, Any] = field(default_factory=dict)
    manifest: dict[str, Any] | None = None
    seen: list[tuple[str, dict[str, dict[str, Any]]]] = field(default_factory=list)
    _file: IO[bytes] | None = None
    _gzip: gzip.GzipFile | None = None
    _peeked: tuple[bytes, bytes] | None = None
    _open_table: TableSection | None = None

    def __enter__(self) -> ArchiveReader:
        try:
            self._file = self.path.open("rb")
        except OSError as exc:
            raise ArchiveError(f"The archive {self.path} cannot be read: {exc.strerror}") from exc
        self._gzip = gzip.GzipFile(fileobj=io.BufferedReader(_OpenedReader(self._file)))
        kind, payload = self.next_frame()
        if kind != HEADER:
            raise ArchiveError("The archive has no header")
        self.header = json.loads(payload)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._file is not None:
            self._file.close()

    def _read(self, size: int) -> bytes:
        assert self._gzip is not None
        try:
            data = self._gzip.read(size)
        except (EOFError, OSError, zlib.error) as exc:
            raise ArchiveError(f"The archive is damaged: {exc}") from exc
        if len(data) < size:
            raise ArchiveError("The archive is truncated: its last part is missing")
        return data

    def next_frame(self) -> tuple[bytes, bytes]:
        if self._peeked is not None:
            frame, self._peeked = self._peeked, None
            return frame
        kind, length = _FRAME.unpack(self._read(_FRAME.size))
        return kind, self._read(length)

    def peek_frame(self) -> tuple[bytes, bytes]:
        if self._peeked is None:
            self._peeked = self.next_frame()
        return self._peeked

    def schemas(self) -> Iterator[SchemaSection]:
        while True:
            kind, payload = self.next_frame()
            if kind == MANIFEST:
                self._finish(json.loads(payload))
                return
            if kind != SCHEMA:
                raise ArchiveError("The archive is out of order")
            described = json.loads(payload)
            self.seen.append((described["name"], {}))
            section = SchemaSection(described["name"], described["info"], self)
            yield section
            for _ in section.tables():
                pass

    def _finish(self, manifest: dict[str, Any]) -> None:
        # Nothing may follow the manifest, and gzip must end where the sealed stream ends.
        assert self._gzip is not None
        try:
            trailing = self._gzip.read(1)
        except (EOFError, OSError, zlib.error) as exc:
            raise ArchiveError(f"The archive is damaged: {exc}") from exc
        if trailing:
            raise ArchiveError("The archive has data after its manifest")
        listed = {
            name: {
                table: {"rows": f["rows"], "sha256": f["sha256"]}
                for table, f in s["tables"].items()
            }
            for name, s in manifest.get("schemas", {}).items()
        }
        if listed != dict(self.seen):
            raise ArchiveError("The archive's manifest does not match its contents")
        self.manifest = manifest


def archive_verify(path: Path) -> dict[str, Any]:
    """Read the whole archive, checking every table; return its manifest."""
    with ArchiveReader(path) as reader:
        for _ in reader.schemas():
            pass
    assert reader.manifest is not None
    return reader.manifest


def archive_manifest(path: Path) -> dict[str, Any]:
    """Open an archive, check every table file against its checksum, return the manifest.
    A one-council archive also carries its schema's `schema` and `tables` at the top."""
    manifest = archive_verify(path)
    if len(manifest["schemas"]) == 1:
        ((schema_name, entry),) = manifest["schemas"].items()
        manifest = {**manifest, "schema": schema_name, "tables": entry["tables"]}
    return manifest
