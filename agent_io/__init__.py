"""Everything on the wire: the agent client, the reference guest agent, fault plans."""
