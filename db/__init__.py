"""PostgreSQL: schema migrations and connection pools."""
