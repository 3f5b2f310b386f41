"""TrustPay: an open-source third-party payment platform (wallet + escrow)."""

__version__ = "0.1.0"
