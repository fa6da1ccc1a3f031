"""The shape of each signed request body another council may send, checked in full before
any handler reads it: a signed but malformed body (`"match_keys": {"demographic": 5}`) is
refused with the federation's own 400 (`{"outcome": "refused", "reason": ...}`), never a
server error. The handlers still read the body as sent: a signed document must stay
byte-for-byte what was signed."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rest_framework import serializers

from core.api.fields import JSONInteger, JSONText

# A match key is an HMAC-SHA256 in hex; an id is a UUID or a council's federation id.
KEY_MAX = 128
ID_MAX = 200


def _strings(max_items: int, **kwargs: Any) -> serializers.ListField:
    return serializers.ListField(
        child=JSONText(max_length=KEY_MAX), max_length=max_items, required=False, **kwargs
    )


class MatchKeys(serializers.Serializer):
    nhs = _strings(16)
    demographic = _strings(1024)
    nhs_and_birth_date = _strings(16)


class Lookup(serializers.Serializer):
    type = serializers.ChoiceField(["patchwork.lookup"])
    match_keys = MatchKeys()


class PointerUpdate(serializers.Serializer):
    type = serializers.ChoiceField(["patchwork.pointer-update"])
    responder = JSONText(max_length=ID_MAX)
    in_reply_to = JSONText(max_length=ID_MAX)
    pointers = serializers.ListField(child=serializers.DictField(), required=False)
    signatures = serializers.DictField(child=serializers.DictField())


class AgreementDocument(serializers.Serializer):
    type = JSONText(max_length=ID_MAX)
    id = JSONText(max_length=ID_MAX)
    version = JSONInteger(min_value=1, required=False)
    parties = serializers.ListField(child=JSONText(max_length=ID_MAX), min_length=2, max_length=2)
    proposed_by = JSONText(max_length=ID_MAX)
    purposes = serializers.ListField(child=JSONText(max_length=ID_MAX), required=False)
    shareable_roles = serializers.ListField(child=JSONText(max_length=ID_MAX), required=False)
    signatures = serializers.DictField(child=serializers.DictField())


class AgreementOffer(serializers.Serializer):
    # Its `sealed_match_key_secret` is checked part by part, with its own reasons, by
    # federation.agreement_secrets.secret_open (decision 0016).
    agreement = AgreementDocument()


class AgreementRekey(serializers.Serializer):
    type = serializers.ChoiceField(["patchwork.agreement-rekey"])
    agreement_id = JSONText(max_length=ID_MAX)
    rekey_id = JSONText(max_length=ID_MAX)


class Countersignature(serializers.Serializer):
    agreement = AgreementDocument()


class Revocation(serializers.Serializer):
    agreement_id = JSONText(max_length=ID_MAX)
    reason = JSONText(max_length=1000, required=False, allow_blank=True)


def well_formed(shape: type[serializers.Serializer], payload: dict[str, Any]) -> bool:
    return shape(data=payload).is_valid()


def _key_text(value: Any) -> bool:
    # JSONText(max_length=KEY_MAX) as DRF runs it: a string, not empty, not longer than
    # KEY_MAX, without NUL (NO_NUL; DRF's own check too) or a lone surrogate.
    return (
        isinstance(value, str)
        and 0 < len(value) <= KEY_MAX
        and "\x00" not in value
        and not any("\ud800" <= ch <= "\udfff" for ch in value)
    )


_LOOKUP_KEY_LISTS = {"nhs": 16, "demographic": 1024, "nhs_and_birth_date": 16}


def lookup_well_formed(payload: Any) -> bool:
    """`well_formed(Lookup, payload)` without DRF's machinery, read on every lookup
    answered: the same documents accepted and refused (tests/federation/test_documents.py
    compares the two)."""
    # DRF's ChoiceField compares str(value): of JSON's values only the string itself.
    if not isinstance(payload, Mapping) or payload.get("type") != "patchwork.lookup":
        return False
    keys = payload.get("match_keys")
    if not isinstance(keys, Mapping):
        return False
    for name, most in _LOOKUP_KEY_LISTS.items():
        if name not in keys:
            continue
        values = keys[name]
        if isinstance(values, (str, Mapping)) or not hasattr(values, "__iter__"):
            return False  # DRF's ListField: any other iterable is a list
        values = list(values)
        if len(values) > most:
            return False
        if not all(_key_text(value) for value in values):
            return False
    return True
