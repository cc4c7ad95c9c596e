"""The administrator's pages: staff accounts and the node's state."""
