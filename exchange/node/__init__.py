"""The node's composition root: builds stores, connectors, services, workers and apps."""
