"""The domain: sandbox and container lifecycles, saga steps, host resources, recovery, audit."""
