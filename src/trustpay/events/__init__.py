"""Events: the outbox lives in platform/; user notifications here."""
