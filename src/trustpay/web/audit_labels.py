"""What each audit event code means, in words a person reads on the security page.
The page shows the label and keeps the raw code in a ``title`` attribute."""

from __future__ import annotations


def _(message: str) -> str:
    """Marks ``message`` for the catalogs; translated when rendered."""
    return message


EVENT_LABELS = {
    "user.signed_up": _("Account created"),
    "session.login": _("Sign-in"),
    "session.logout": _("Sign-out"),
    "session.revoked": _("Session signed out remotely"),
    "verification.confirm": _("Contact verification"),
    "payment_password.changed": _("Payment password changed"),
    "payment_password.check": _("Payment password entered"),
    "user.locked": _("Locked after too many failed attempts"),
    "mfa.enrolment_started": _("Two-step verification set-up started"),
    "mfa.enabled": _("Two-step verification turned on"),
    "mfa.disabled": _("Two-step verification turned off"),
    "mfa.recovery_code_used": _("Recovery code used"),
    "password.reset_requested": _("Password reset requested"),
    "password.reset": _("Password reset"),
    "user.frozen": _("Account frozen"),
    "user.unfrozen": _("Account unfrozen"),
    "identity.submitted": _("Identity submitted"),
}
UNKNOWN_EVENT = _("Other security event")
