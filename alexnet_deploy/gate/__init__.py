"""The CI regression gate: compare bench reports and decide, without crying wolf."""
