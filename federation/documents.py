"""The shape of each signed request body another council may send, checked in full before
any handler reads it: a signed but malformed body (`"match_keys": {"demographic": 5}`) is
refused with the federation's own 400 (`{"outcome": "refused", "reason": ...}`), never a
server error. The handlers still read the body as sent: a signed document must stay
byte-for-byte what was signed."""

from __future__ import annotations

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
