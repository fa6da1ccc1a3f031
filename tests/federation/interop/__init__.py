"""The independent verifier (verify.mjs, npm packages run by the machine's Node) and the
RFC 8785 test vectors it and our canonical JSON are checked against."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import http_sf
import pytest
from http_message_signatures import HTTPMessageVerifier, algorithms

from federation import protocol

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
VERIFY = HERE / "verify.mjs"
VECTORS = HERE / "rfc8785"


def node() -> str:
    """The machine's Node, with the npm packages `make install` put in node_modules."""
    found = shutil.which("node")
    if found is None:
        pytest.fail(
            "Node.js is not installed: the interoperability check needs it (apt install nodejs)"
        )
    if not (ROOT / "node_modules" / "http-message-signatures").is_dir():
        pytest.fail("npm packages missing: run `make install` (npm ci)")
    return found


def run_verifier(job: dict[str, Any]) -> dict[str, Any]:
    """verify.mjs on `job`; its answer."""
    done = subprocess.run(
        [node(), str(VERIFY)],
        input=json.dumps(job).encode(),
        capture_output=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def our_signature_base(method: str, url: str, headers: dict[str, str]) -> str:
    """The signature base our RFC 9421 library builds for the request's Patchwork signature,
    as the receiver verifies it."""
    verifier = HTTPMessageVerifier(signature_algorithm=algorithms.ED25519, key_resolver=None)
    lower = {k.lower(): v for k, v in headers.items()}
    inputs = verifier._parse_signature_dictionary(lower["signature-input"])
    label = next(
        name
        for name, member in inputs.items()
        if member.params.get("tag") == protocol.SIGNATURE_TAG
    )
    message = protocol.HttpMessage(
        method=method, url=protocol.target_uri_normalised(url), headers=dict(headers)
    )
    base, _, _ = verifier._build_signature_base(
        message, covered_component_ids=list(inputs[label]), signature_params=inputs[label].params
    )
    return str(base)


def request_item(
    name: str, *, url: str, headers: dict[str, str], body: bytes, public_key: bytes
) -> dict[str, Any]:
    return {
        "name": name,
        "method": "POST",
        "url": url,
        "headers": headers,
        "body_b64": protocol.b64(body),
        "public_key": protocol.b64(public_key),
        "signature_base": our_signature_base("POST", url, headers),
    }


def document_item(name: str, document: dict[str, Any], keys: dict[str, bytes]) -> dict[str, Any]:
    return {
        "name": name,
        "document": document,
        "canonical_b64": protocol.b64(protocol.canonical(document)),
        "keys": {key_id: protocol.b64(public) for key_id, public in keys.items()},
    }


def labels(headers: dict[str, str]) -> list[str]:
    value = {k.lower(): v for k, v in headers.items()}["signature-input"]
    return list(http_sf.parse(value.encode(), tltype="dictionary"))
