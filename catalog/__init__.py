"""DuckDB catalog, Parquet layout, content hashing and corpus-variant configuration."""
