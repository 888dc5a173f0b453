"""Identity: users, passwords, tokens, roles."""
