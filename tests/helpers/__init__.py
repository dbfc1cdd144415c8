"""Test helpers: images built in code, a throwaway PostgreSQL database."""
