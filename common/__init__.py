"""Shared parts that the bundles' configs refer to as ``common.<...>``: networks, losses, engines and data."""
