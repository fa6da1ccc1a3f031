"""The deployment-wide federation records, in the public schema: each council's signing
keys and the directory of peers. Their tables keep the names they had when they lived in
`tenants` (db_table), so moving them here changed no data."""

from __future__ import annotations

from django.db import models

from tenants.models import Council


def council_federation_id(council: Council) -> str:
    """How a council is named to every other: `council:<ONS code>`."""
    return f"council:{council.code}"


class CouncilSigningKey(models.Model):
    """One of a council's Ed25519 federation keys. The private half is sealed under the
    deployment's key-encryption key and never stored or logged in clear."""

    council = models.ForeignKey(Council, on_delete=models.CASCADE, related_name="signing_keys")
    key_id = models.CharField(max_length=80, unique=True)
    public_key = models.BinaryField()
    sealed_private_key = models.BinaryField()
    created_at = models.DateTimeField(auto_now_add=True)
    retired_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "tenants_councilsigningkey"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.key_id


class CouncilEncryptionKey(models.Model):
    """A council's X25519 key for receiving secrets sealed to it with HPKE (RFC 9180): an
    agreement's match-key secret, sent by the partner. Published beside the signing keys in
    the council's signed key document and card; the private half is sealed under the
    deployment's key-encryption key like theirs (decision 0016)."""

    council = models.ForeignKey(Council, on_delete=models.CASCADE, related_name="encryption_keys")
    key_id = models.CharField(max_length=80, unique=True)
    public_key = models.BinaryField()
    sealed_private_key = models.BinaryField()
    created_at = models.DateTimeField(auto_now_add=True)
    retired_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.key_id


class FederationPeer(models.Model):
    """A council this deployment may exchange pointers with. Councils on this deployment
    are listed automatically; councils on other deployments are added by an operator from
    the signed council card their deployment exports. A removed peer is refused at once."""

    federation_id = models.CharField(max_length=40, unique=True, help_text="council:<ONS code>")
    name = models.CharField(max_length=120)
    # Set for a council on this deployment; its base URL and keys come from the platform.
    council = models.OneToOneField(
        Council, null=True, blank=True, on_delete=models.CASCADE, related_name="peer"
    )
    base_url = models.URLField(blank=True)
    # The keys the operator accepted with the card: the trust anchor for key documents.
    trusted_keys = models.JSONField(default=list, blank=True)
    card = models.JSONField(default=dict, blank=True)
    keys_document = models.JSONField(null=True, blank=True)
    keys_fetched_at = models.DateTimeField(null=True, blank=True)
    keys_valid_until = models.DateTimeField(null=True, blank=True)
    added_at = models.DateTimeField(auto_now_add=True)
    removed_at = models.DateTimeField(null=True, blank=True)
    # Set while the signed directory of councils lists this council (decision 0014): its
    # status there, and the member entry last applied (base URL and keys, the trust anchor).
    directory_status = models.CharField(max_length=20, blank=True, default="")
    directory_entry = models.JSONField(null=True, blank=True)
    directory_sequence = models.BigIntegerField(null=True, blank=True)

    class Meta:
        db_table = "tenants_federationpeer"
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.federation_id})"

    @property
    def is_local(self) -> bool:
        return self.council_id is not None

    @property
    def is_removed(self) -> bool:
        return self.removed_at is not None


class DirectoryDocument(models.Model):
    """A directory of councils this deployment received (fetched, or published here by its
    operator) and what was decided about it. The newest accepted one is the directory in
    force, served at /.well-known/patchwork/directory; a refused one changes nothing."""

    class Decision(models.TextChoices):
        ACCEPTED = "accepted"
        REFUSED = "refused"

    received_at = models.DateTimeField(auto_now_add=True)
    # The last time this same document was fetched again (a fetch that finds nothing new
    # adds no row).
    checked_at = models.DateTimeField(null=True, blank=True)
    source = models.CharField(max_length=500, help_text="the URL fetched, or publish:<file>")
    decision = models.CharField(max_length=10, choices=Decision.choices)
    reason = models.CharField(max_length=300, blank=True)
    sequence = models.BigIntegerField(null=True, blank=True)
    issued_at = models.DateTimeField(null=True, blank=True)
    valid_until = models.DateTimeField(null=True, blank=True)
    # The document as received (JSON), or null when it was not JSON at all.
    document = models.JSONField(null=True, blank=True)
    digest = models.CharField(max_length=64, blank=True, help_text="sha-256 of what was received")
    changes = models.JSONField(default=list, blank=True)
    published = models.BooleanField(
        default=False, help_text="installed by this deployment's operator, served to others"
    )

    class Meta:
        ordering = ["-received_at", "-id"]
        indexes = [models.Index(fields=["decision", "-sequence"], name="directory_doc_accepted")]

    def __str__(self) -> str:
        return f"directory {self.sequence} ({self.decision})"
