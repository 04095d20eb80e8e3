"""Integrations with servers and frameworks; each module imports its framework lazily.

A missing optional dependency raises ``ImportError`` naming the extra to install,
e.g. "pip install 'mainspring[waitress]'".
"""
