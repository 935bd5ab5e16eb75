"""ANTs SyN in a virtualenv of its own: ``python3.11 -m tools.ants setup``; ``syn.py`` runs there."""
