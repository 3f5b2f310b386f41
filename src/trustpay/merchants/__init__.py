"""Merchants: profiles, fee plans, secret API keys and the caller they authenticate."""
