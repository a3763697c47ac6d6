"""The Streamlit front end: the only layer (with ``app.py``) that imports streamlit.

``pages/`` holds the thin page scripts; the logic they lay out lives in the
modules here and in the services, where it is unit-tested.
"""
