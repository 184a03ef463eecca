"""PBFT consensus core: a pure state machine, no I/O, no clock, no randomness."""
