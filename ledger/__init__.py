"""carbon-ledger's write side: value types, the event catalogue, rules, the domain model and the store."""
