"""The durable delivery state machine: routes, transitions and back-off, with no I/O."""
