"""MONAI Label app serving the bundles (``main.py``) and the setup of its own virtualenv (``python -m tools.monailabel``)."""
