"""Orders as the API and partners see them: creation, reading, listing."""
