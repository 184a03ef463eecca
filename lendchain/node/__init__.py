"""The node daemon: everything that does I/O."""
