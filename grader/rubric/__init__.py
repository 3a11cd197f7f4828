"""YAML rubrics: schema, loading with line-numbered errors, and scoring facts into a score sheet."""
