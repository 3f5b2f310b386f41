"""The sandbox bank: a separate small bank with its own SQLite file, its own
card accounts and its own HTTP API (:mod:`.app`), run as its own process
(``trustpay sandbox-bank``) or mounted in-process under ``/sandbox-bank``."""

from trustpay.banks.sandbox.bank import BankControl, SandboxBank

__all__ = ["BankControl", "SandboxBank"]
