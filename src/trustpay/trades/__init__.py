"""Trades: escrow (担保交易) and instant (即时到账) payments to merchants."""
