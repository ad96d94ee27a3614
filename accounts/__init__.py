"""The bottom Django app: users, API keys (stored as prefix + hash), budget periods, and every
change to users and keys (``actions``). Imports nothing from ``proxy``."""
