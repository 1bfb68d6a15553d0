import os

# Ray started by the tests stays on loopback: with this, Ray resolves its node address to 127.0.0.1 instead
# of the machine's network address. Ray reads it on import, so it is set before any test module imports ray.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
