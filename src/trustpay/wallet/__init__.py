"""Wallet: bank cards, top-ups, withdrawals, transfers, statements and receipts."""
