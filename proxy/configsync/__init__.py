"""The config between its forms: a file (config.yaml, the auth dir) applied to the models in one
transaction, the models changed one row at a time (``actions``), the models as the engine's
config types, and the shared config version every change bumps."""
