"""Root conftest: the platform's testing fixtures (`core.testing`) for every test here, as a user's project
would enable them."""

pytest_plugins = ["core.testing"]
