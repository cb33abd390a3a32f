"""`jobctl`, the platform's command line: `jobctl --help`."""
