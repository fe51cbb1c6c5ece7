"""Wire contract with the guest agent: Kata agent v1 .proto files and their generated code."""
