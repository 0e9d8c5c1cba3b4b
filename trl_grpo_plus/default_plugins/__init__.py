"""Built-in components, each module a plugin registered through the same hooks as installed plugins."""
