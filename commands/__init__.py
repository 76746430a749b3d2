"""carbon-ledger's faces: the click CLI, import, and the scenarios."""
