"""Every argument block as a typed, nested dataclass, and the one YAML + --set + flag parser."""
