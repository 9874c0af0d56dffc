"""Redis: key names, caches, locks. Every key is built in keys.py."""
