"""The read side: pure folds over the global event order (balances, history, market, compliance, coverage)."""
