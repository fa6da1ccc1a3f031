"""Single sign-on with the council's own identity provider (decision 0020): OpenID Connect,
the authorization code flow with state, nonce and PKCE (S256), through Authlib's client;
the identity token's signature and claims checked with joserfc against the keys the
provider publishes.

A council's provider can only ever sign someone into that council: the settings, the
people and the sessions all live in the council's own schema, and the public schema (the
operator console) has no single sign-on at all. Who may come in: a person the council has
invited (an account with that email exists here and is switched on), or a person whose
verified email is in one of the council's allowed domains (created as a practitioner who
has not yet said where they work). The provider's own second factor counts when its token
says it checked one (`amr`, or an `acr` the council named); otherwise Patchwork's code step
follows, as after a password.

Every step is audited through accounts' audit signal (accounts.auditing, decision 0019):
core, which keeps the council's audit log and sits above accounts, writes each one; a step
no log took is not made."""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

import requests
from authlib.common.security import generate_token
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.requests_client import OAuth2Session
from cryptography.exceptions import InvalidTag
from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.core.validators import validate_email
from django.db import connection, transaction
from django.http import HttpRequest
from joserfc import jwt
from joserfc.errors import (
    BadSignatureError,
    ExpiredTokenError,
    InvalidClaimError,
    JoseError,
    MissingClaimError,
)
from joserfc.jwk import KeySet
from joserfc.jwt import JWTClaimsRegistry

from accounts.auditing import account_audited
from accounts.factors import factor_reset_pending
from accounts.models import (
    ProviderSecondFactor,
    SingleSignOn,
    SingleSignOnIdentity,
    User,
)
from accounts.sealing import seal, unseal
from accounts.selectors import user_confirmed_device

FLOW = "patchwork_sso_flow"
SCOPES = "openid email profile"
ID_TOKEN_ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "ES256", "ES384"]
# RFC 8176 authentication method references that mean more than one factor was checked.
MFA_METHODS = frozenset({"mfa", "mca", "otp", "hwk", "sc", "sms", "tel"})
LEEWAY_SECONDS = 60
NONCE_SEEN_SECONDS = 24 * 3600

# Refusals that are the provider's trouble or the settings', not the person's attempt.
PROVIDER_TROUBLE = frozenset(
    {"provider_unreachable", "provider_unusable", "issuer_mismatch", "secret_unreadable"}
)
START_AGAIN = "Go back to the sign-in page and start again."


def _audit(*, actor: User | None, action: str, detail: dict[str, Any]) -> None:
    """One step into the council's audit log (and so its audit export)."""
    responses = account_audited.send(
        sender=SingleSignOn, actor=actor, action=action, user=actor, detail=detail
    )
    if not any(response is True for _, response in responses):
        raise ImproperlyConfigured(f"No audit log took {action}: the step is not made")


class SignInRefused(Exception):
    """Single sign-on refused: `reason` is recorded in the audit log, `message` is what the
    person sees, in their words."""

    def __init__(self, reason: str, message: str, **detail: Any) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.detail = detail


@dataclass(frozen=True)
class SignedIn:
    user: User
    provider_checked_second_factor: bool
    created: bool
    next_url: str = "/"


# --- Settings -----------------------------------------------------------------------------------


def in_council() -> bool:
    return getattr(connection, "schema_name", "public") != "public"


def sso_for_council() -> SingleSignOn | None:
    """The council's switched-on provider, or None (always None on the operator console)."""
    if not in_council():
        return None
    return SingleSignOn.objects.filter(enabled=True).first()


def sso_settings() -> SingleSignOn | None:
    """The council's provider settings, switched on or not (None on the operator console)."""
    if not in_council():
        return None
    return SingleSignOn.objects.first()


def password_sign_in_allowed(user: User) -> bool:
    """False for a practitioner or manager of a council that signs them in only through its
    provider; administrators and governance officers keep their password."""
    sso = sso_for_council()
    if sso is None or sso.password_sign_in_for_practitioners:
        return True
    return user.role not in {User.Role.PRACTITIONER, User.Role.MANAGER}


def secret_context() -> str:
    """Binds a sealed secret to this council: it opens in no other schema."""
    return f"patchwork:sso-client-secret:{getattr(connection, 'schema_name', 'public')}"


def client_secret(sso: SingleSignOn) -> str:
    """The client secret, unsealed. A secret that does not open (one copied from another
    council, or forgotten when the council was brought back from an archive) stops
    sign-in with a message for the administrator rather than an error page."""
    try:
        return unseal(bytes(sso.sealed_client_secret), context=secret_context()).decode()
    except (InvalidTag, ValueError) as exc:
        raise SignInRefused(
            "secret_unreadable",
            "Single sign-on needs setting up again: ask your administrator to enter the "
            "client secret on the single sign-on page.",
        ) from exc


def sso_credentials_forget() -> None:
    """For a council brought back from an archive (`council_credentials_forget`): single
    sign-on is switched off and its secret dropped until an administrator enters it again,
    and no session verified by the old provider's second factor survives."""
    SingleSignOn.objects.update(enabled=False, sealed_client_secret=b"")
    ProviderSecondFactor.objects.all().delete()


def _issuer_checked(issuer: str) -> str:
    issuer = issuer.strip().rstrip("/")
    parts = urlsplit(issuer)
    loopback = False
    try:
        loopback = ipaddress.ip_address(parts.hostname or "").is_loopback
    except ValueError:
        loopback = parts.hostname == "localhost"
    if (
        parts.scheme == "https"
        and parts.hostname
        or parts.scheme == "http"
        and loopback
        and settings.SSO_ALLOW_LOOPBACK_HTTP
    ):
        pass
    else:
        raise ValidationError({"issuer": "The issuer must be an https address"})
    if parts.query or parts.fragment:
        raise ValidationError({"issuer": "The issuer has no query or fragment (? or #)"})
    return issuer


def _domains_checked(domains: list[str]) -> list[str]:
    cleaned = []
    for domain in domains:
        domain = domain.strip().lower().lstrip("@")
        if not domain:
            continue
        try:
            validate_email(f"someone@{domain}")
        except ValidationError as exc:
            raise ValidationError({"email_domains": f"{domain} is not an email domain"}) from exc
        cleaned.append(domain)
    return sorted(set(cleaned))


@transaction.atomic
def sso_configure(
    *,
    name: str,
    issuer: str,
    client_id: str,
    client_secret: str,
    email_domains: list[str],
    email_claim: str,
    mfa_acr_values: list[str],
    password_sign_in_for_practitioners: bool,
    enabled: bool,
    configured_by: User,
) -> SingleSignOn:
    """Set the council's provider. The issuer must answer with its discovery document
    (naming itself as that issuer), so a mistyped address is caught here rather than at
    someone's first sign-in. An empty `client_secret` keeps the one already sealed."""
    if not in_council():
        raise ValidationError("Single sign-on is set by a council, not on the operator console")
    name, client_id, email_claim = name.strip(), client_id.strip(), email_claim.strip()
    if not name:
        raise ValidationError({"name": "Enter the name people know the sign-in by"})
    issuer = _issuer_checked(issuer)
    if not client_id:
        raise ValidationError({"client_id": "Enter the client (application) id"})
    if not email_claim:
        raise ValidationError({"email_claim": "Enter the claim that holds the email address"})
    existing = SingleSignOn.objects.select_for_update().first()
    if not client_secret and (existing is None or not bytes(existing.sealed_client_secret)):
        raise ValidationError({"client_secret": "Enter the client secret"})
    try:
        provider_metadata(issuer, fresh=True)
    except SignInRefused as refused:
        raise ValidationError({"issuer": refused.message}) from refused
    sso = existing or SingleSignOn()
    before = _settings_summary(sso) if existing else {}
    sso.name = name
    sso.issuer = issuer
    sso.client_id = client_id
    sso.email_domains = _domains_checked(email_domains)
    sso.email_claim = email_claim
    sso.mfa_acr_values = sorted({v.strip() for v in mfa_acr_values if v.strip()})
    sso.password_sign_in_for_practitioners = password_sign_in_for_practitioners
    sso.enabled = enabled
    sso.updated_by = configured_by
    if client_secret:
        sso.sealed_client_secret = seal(client_secret.encode(), context=secret_context())
    sso.save()
    after = _settings_summary(sso)
    changed = sorted(k for k in after if before.get(k) != after[k])
    if client_secret and existing is not None:
        changed.append("client_secret")
    # Another issuer is another namespace of subjects: each person is linked again, by
    # their verified email, at their next sign-in.
    unlinked, _ = SingleSignOnIdentity.objects.exclude(issuer=issuer).delete()
    _audit(
        actor=configured_by,
        action="sso_changed" if existing else "sso_configured",
        detail={**after, "changed": changed, "identities_unlinked": unlinked},
    )
    return sso


def _settings_summary(sso: SingleSignOn) -> dict[str, Any]:
    """What the audit log records of the settings: never the secret."""
    return {
        "name": sso.name,
        "issuer": sso.issuer,
        "client_id": sso.client_id,
        "email_domains": list(sso.email_domains),
        "email_claim": sso.email_claim,
        "mfa_acr_values": list(sso.mfa_acr_values),
        "password_sign_in_for_practitioners": sso.password_sign_in_for_practitioners,
        "enabled": sso.enabled,
    }


# --- The provider's published documents ---------------------------------------------------------


def _get_json(url: str) -> dict[str, Any]:
    try:
        response = requests.get(url, timeout=settings.SSO_HTTP_TIMEOUT_SECONDS)
        response.raise_for_status()
        body = response.json()
    except (requests.RequestException, ValueError) as exc:
        raise SignInRefused(
            "provider_unreachable",
            "Your council's sign-in service did not answer. Try again in a few minutes.",
            url=url,
        ) from exc
    if not isinstance(body, dict):
        raise SignInRefused(
            "provider_unreachable", "Your council's sign-in service gave an answer we cannot read."
        )
    return body


def _cache_key(kind: str, url: str) -> str:
    return f"sso:{kind}:{hashlib.sha256(url.encode()).hexdigest()}"


def provider_metadata(issuer: str, *, fresh: bool = False) -> dict[str, Any]:
    """The provider's discovery document (OpenID Connect Discovery 1.0), which must name the
    same issuer and the endpoints the flow needs."""
    key = _cache_key("metadata", issuer)
    metadata = None if fresh else cache.get(key)
    if metadata is None:
        metadata = _get_json(f"{issuer}/.well-known/openid-configuration")
        if str(metadata.get("issuer", "")).rstrip("/") != issuer:
            raise SignInRefused(
                "issuer_mismatch",
                "That address's discovery document names another issuer: check the address.",
            )
        for endpoint in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
            if not isinstance(metadata.get(endpoint), str):
                raise SignInRefused(
                    "provider_unusable",
                    f"Your council's sign-in service does not publish its {endpoint}.",
                )
        cache.set(key, metadata, settings.SSO_METADATA_CACHE_SECONDS)
    return metadata


def provider_keys(jwks_uri: str, *, fresh: bool = False) -> KeySet:
    key = _cache_key("jwks", jwks_uri)
    jwks = None if fresh else cache.get(key)
    if jwks is None:
        jwks = _get_json(jwks_uri)
        cache.set(key, jwks, settings.SSO_METADATA_CACHE_SECONDS)
    try:
        return KeySet.import_key_set(jwks)  # type: ignore[arg-type]
    except (JoseError, ValueError, KeyError, TypeError) as exc:
        raise SignInRefused(
            "provider_unusable", "Your council's sign-in service publishes keys we cannot read."
        ) from exc


# --- The flow -----------------------------------------------------------------------------------


def _client(sso: SingleSignOn, redirect_uri: str, metadata: dict[str, Any]) -> OAuth2Session:
    methods = metadata.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
    method = "client_secret_basic" if "client_secret_basic" in methods else "client_secret_post"
    return OAuth2Session(
        client_id=sso.client_id,
        client_secret=client_secret(sso),
        token_endpoint_auth_method=method,
        scope=SCOPES,
        redirect_uri=redirect_uri,
        code_challenge_method="S256",
    )


def sign_in_start(
    request: HttpRequest, *, sso: SingleSignOn, redirect_uri: str, next_url: str
) -> str:
    """The provider's authorization address for this browser: a fresh state, nonce and PKCE
    verifier are kept in the session (and nowhere else) until the provider sends it back."""
    try:
        metadata = provider_metadata(sso.issuer)
        client = _client(sso, redirect_uri, metadata)
    except SignInRefused as refused:
        raise _refused(refused) from None
    state, nonce, verifier = generate_token(32), generate_token(32), generate_token(64)
    url, _ = client.create_authorization_url(
        metadata["authorization_endpoint"], state=state, nonce=nonce, code_verifier=verifier
    )
    request.session[FLOW] = {
        "state": state,
        "nonce": nonce,
        "verifier": verifier,
        "issuer": sso.issuer,
        "next": next_url,
    }
    return url


def _refused(refused: SignInRefused) -> SignInRefused:
    """Audit a refusal (committed on its own: a refusal changes nothing else)."""
    with transaction.atomic():
        _audit(
            actor=None,
            action="sso_refused",
            detail={"reason": refused.reason, **refused.detail},
        )
    return refused


def sign_in_finish(request: HttpRequest, *, sso: SingleSignOn, redirect_uri: str) -> SignedIn:
    """Check what the provider sent back and decide who, if anyone, signs in. Raises
    SignInRefused (already audited) for anything short of a valid, expected, verified
    person this council lets in; nothing is created then."""
    try:
        return _finish(request, sso=sso, redirect_uri=redirect_uri)
    except SignInRefused as refused:
        raise _refused(refused) from None


def _finish(request: HttpRequest, *, sso: SingleSignOn, redirect_uri: str) -> SignedIn:
    flow = request.session.pop(FLOW, None)
    state = request.GET.get("state", "")
    if not isinstance(flow, dict) or not state or state != flow.get("state"):
        raise SignInRefused(
            "state",
            "This sign-in was not started from this page, or has already been used. " + START_AGAIN,
        )
    if flow.get("issuer") != sso.issuer:
        raise SignInRefused(
            "settings_changed", "Your council's sign-in settings changed. " + START_AGAIN
        )
    if request.GET.get("error"):
        raise SignInRefused(
            "provider_error",
            "Your council's sign-in service did not sign you in. " + START_AGAIN,
            error=request.GET["error"][:100],
        )
    code = request.GET.get("code", "")
    if not code:
        raise SignInRefused("no_code", "The sign-in service sent no result. " + START_AGAIN)
    metadata = provider_metadata(sso.issuer)
    try:
        token = _client(sso, redirect_uri, metadata).fetch_token(
            metadata["token_endpoint"],
            grant_type="authorization_code",
            code=code,
            code_verifier=flow["verifier"],
            timeout=settings.SSO_HTTP_TIMEOUT_SECONDS,
        )
    except (OAuthError, requests.RequestException, ValueError) as exc:
        raise SignInRefused(
            "token_refused",
            "Your council's sign-in service did not confirm who you are. " + START_AGAIN,
            error=str(getattr(exc, "error", type(exc).__name__))[:100],
        ) from exc
    id_token = token.get("id_token")
    if not isinstance(id_token, str):
        raise SignInRefused("no_id_token", "The sign-in service sent no identity. " + START_AGAIN)
    claims = _id_token_claims(id_token, sso=sso, metadata=metadata, nonce=flow["nonce"])
    return replace(_person(claims, sso=sso), next_url=str(flow.get("next", "/")))


def _id_token_claims(
    id_token: str, *, sso: SingleSignOn, metadata: dict[str, Any], nonce: str
) -> dict[str, Any]:
    """The identity token's claims once its signature (a key the issuer publishes), issuer,
    audience, expiry, issue time and nonce all hold."""
    not_you = "We could not confirm who you are with your council's sign-in service. "
    try:
        try:
            decoded = jwt.decode(
                id_token, provider_keys(metadata["jwks_uri"]), algorithms=ID_TOKEN_ALGORITHMS
            )
        except (ValueError, JoseError):
            # The provider may have rotated its keys since they were cached: fetch them once.
            decoded = jwt.decode(
                id_token,
                provider_keys(metadata["jwks_uri"], fresh=True),
                algorithms=ID_TOKEN_ALGORITHMS,
            )
        claims = dict(decoded.claims)
        JWTClaimsRegistry(
            leeway=LEEWAY_SECONDS,
            iss={"essential": True, "value": sso.issuer},
            aud={"essential": True, "value": sso.client_id},
            sub={"essential": True},
            exp={"essential": True},
            iat={"essential": True},
            nonce={"essential": True, "value": nonce},
        ).validate(claims)
    except ExpiredTokenError as exc:
        raise SignInRefused("expired", not_you + "Its answer had expired. " + START_AGAIN) from exc
    except (InvalidClaimError, MissingClaimError) as exc:
        claim = getattr(exc, "claim", "") or ""
        reason = {"iss": "issuer", "aud": "audience", "nonce": "nonce"}.get(claim, "claims")
        raise SignInRefused(reason, not_you + START_AGAIN, claim=claim) from exc
    except (BadSignatureError, ValueError, JoseError) as exc:
        raise SignInRefused(
            "signature", not_you + "Its answer was not signed by it.", error=type(exc).__name__
        ) from exc
    audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    if len(audiences) > 1 and claims.get("azp") != sso.client_id:
        raise SignInRefused("audience", not_you + START_AGAIN, claim="azp")
    # A nonce is used once: a token replayed into a later flow is refused even if that
    # flow's session somehow held the same nonce.
    if not cache.add(_cache_key("nonce", nonce), 1, NONCE_SEEN_SECONDS):
        raise SignInRefused("nonce_replayed", not_you + START_AGAIN)
    return claims


def _email_verified(claims: dict[str, Any]) -> bool:
    # `email_verified` (OpenID Connect); Microsoft Entra ID's `xms_edov` (the email's
    # domain is verified by the tenant that owns it). Some providers send strings.
    return any(claims.get(name) in (True, "true") for name in ("email_verified", "xms_edov"))


def _person(claims: dict[str, Any], *, sso: SingleSignOn) -> SignedIn:
    """Who the verified claims are in this council: an invited person, or a new
    practitioner from an allowed domain."""
    raw_email = claims.get(sso.email_claim)
    email = raw_email.strip().lower() if isinstance(raw_email, str) else ""
    subject = str(claims["sub"])
    try:
        validate_email(email)
    except ValidationError as exc:
        raise SignInRefused(
            "no_email",
            "Your council's sign-in service did not tell us your email address. "
            "Ask your administrator to check the single sign-on settings.",
            claim=sso.email_claim,
        ) from exc
    seen = {"email": email, "issuer": sso.issuer, "subject": subject}
    if not _email_verified(claims):
        raise SignInRefused(
            "email_unverified",
            f"Your council's sign-in service has not verified the email address {email}, "
            "so it cannot sign you in to Patchwork. Ask your administrator.",
            **seen,
        )
    user = User.objects.filter(email=email).first()
    identity = SingleSignOnIdentity.objects.filter(issuer=sso.issuer, subject=subject).first()
    if identity is not None and (user is None or identity.user_id != user.pk):
        raise SignInRefused(
            "subject_mismatch",
            "Your sign-in account is linked to another Patchwork account. Ask your administrator.",
            **seen,
        )
    if user is not None:
        linked = SingleSignOnIdentity.objects.filter(user=user).first()
        if linked is not None and (linked.issuer, linked.subject) != (sso.issuer, subject):
            raise SignInRefused(
                "subject_mismatch",
                f"{email} is linked to another person at your council's sign-in service. "
                "Ask your administrator.",
                **seen,
            )
        if not user.is_active:
            raise SignInRefused(
                "inactive",
                "Your Patchwork account is switched off. Ask your administrator.",
                **seen,
            )
    elif email.rsplit("@", 1)[1] not in sso.email_domains:
        raise SignInRefused(
            "domain_not_allowed",
            f"{email} has not been invited to Patchwork here, and its domain is not one this "
            "council signs in automatically. Ask your administrator for an invitation.",
            **seen,
        )
    amr_claim = claims.get("amr")
    amr: list[Any] = amr_claim if isinstance(amr_claim, list) else []
    second_factor = bool(MFA_METHODS.intersection(map(str, amr))) or (
        bool(claims.get("acr")) and claims.get("acr") in sso.mfa_acr_values
    )
    # Patchwork's own factor: an authenticator app, or a new one to set up after an
    # administrator's reset (decision 0019), as after a password.
    own_factor = user is not None and (
        user_confirmed_device(user) is not None or factor_reset_pending(user) is not None
    )
    if not second_factor and not own_factor:
        raise SignInRefused(
            "no_second_factor",
            "Your council's sign-in did not check a second factor (such as an authenticator "
            "app), and you have no authenticator app set up in Patchwork. Ask your "
            "administrator.",
            **seen,
        )
    with transaction.atomic():
        created = user is None
        if user is None:
            name = claims.get("name")
            user = User.objects.create_user(
                email,
                full_name=(name if isinstance(name, str) and name.strip() else email)[:150],
                role=User.Role.PRACTITIONER,
            )
            _audit(
                actor=user,
                action="sso_user_created",
                detail={**seen, "role": user.role},
            )
        identity, _ = SingleSignOnIdentity.objects.update_or_create(
            user=user, defaults={"issuer": sso.issuer, "subject": subject}
        )
        _audit(
            actor=user,
            action="sso_signed_in",
            detail={
                **seen,
                "provider_second_factor": second_factor,
                "amr": [str(a) for a in amr][:10],
                "acr": str(claims.get("acr", ""))[:100],
            },
        )
    return SignedIn(user=user, provider_checked_second_factor=second_factor, created=created)


def provider_second_factor(user: User) -> ProviderSecondFactor:
    """The device that marks a session's second factor as checked by the provider."""
    device, _ = ProviderSecondFactor.objects.get_or_create(
        user=user, defaults={"name": "Council sign-in", "confirmed": True}
    )
    return device
