"""Pure rules of the seed (Kata v1 `kata_agent.go`): what the guest is asked to mount and run.

Every function here takes plain values (the OCI config.json as a dict, config dataclasses,
block device descriptions) and returns new values or agent wire messages; none touches the
host or mutates its inputs, so the lifecycle engine can record a rule's output as the
intent of a step before acting on it.
"""
