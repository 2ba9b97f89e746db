"""Per-restaurant WebSocket rooms fed by the event log (docs/protocol.md is the contract)."""
