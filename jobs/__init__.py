"""Entry points, run as ``python -m jobs.<name>`` from the repository root."""
