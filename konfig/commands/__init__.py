"""Command modules of the `konfig` CLI; each exposes ``register(app)``."""
