"""Banks: the connector protocol the platform uses (:mod:`.connector`), its HTTP
adapter (:mod:`.client`) and the sandbox bank (:mod:`.sandbox`), a separate
system with its own storage that behaves like a real bank."""
