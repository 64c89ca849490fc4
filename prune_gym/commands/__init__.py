"""Command-line commands, one module per group of related commands."""
