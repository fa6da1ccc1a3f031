"""What the platform tells the apps above it, which it never imports (decision 0006)."""

from __future__ import annotations

from django.dispatch import Signal

# Sent by `council_onboard` inside the new council's schema, in the onboarding transaction,
# with `council=`: an app fills the council's own tables with what every council starts
# with (core: the national default role list). A receiver's failure undoes the onboarding.
council_schema_created = Signal()

# Sent by `council_import` inside the new council's schema, in the import transaction, with
# `council=`: an app forgets whatever in its own tables lets someone in without signing in
# to this council (core: the source systems' import tokens). The archive's council may
# still run elsewhere, and a copy must accept none of its credentials.
council_credentials_forget = Signal()
