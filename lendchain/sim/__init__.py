"""Deterministic simulation of PBFT replicas (seeded network, crashes, Byzantine members).

Separate from ``lendchain.consensus`` because it uses ``random``; consensus never imports it.
"""
