"""The `promptus` command: one entry point that dispatches to the project's packages."""
