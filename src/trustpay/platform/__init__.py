"""Platform plumbing shared by every capability: the composition context,
idempotency keys, outbox, jobs and the platform clock."""
