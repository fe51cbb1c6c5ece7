"""Domain-free, durable, tamper-evident event log (LMDB + msgpack)."""
