"""The embedded local stack: moto server, local API server, node agents, one supervisor."""
