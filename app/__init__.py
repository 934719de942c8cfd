"""Neural Gate Studio dashboard (Streamlit pages and UI helpers; no model logic)."""
