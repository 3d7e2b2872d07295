"""The application layer: the command line, the demo, readers and figures."""
