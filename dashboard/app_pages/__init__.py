"""Dashboard pages, run by st.navigation (not imported)."""
