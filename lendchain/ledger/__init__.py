"""The deterministic application: transactions, loan state, blocks."""
