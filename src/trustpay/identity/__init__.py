"""Users, credentials, sessions, lockout, verification codes and the audit log."""
