"""The AIOps Suite dashboard: the entry point only builds the navigation.

Run with `aiops dashboard` (which sets AIOPS_HOME); each page is one file beside this one.
"""

from __future__ import annotations

import streamlit as st

st.set_page_config(page_title="AIOps Suite", page_icon=":material/monitoring:", layout="wide")
st.navigation(
    [st.Page("overview.py", title="Overview", icon=":material/dashboard:", default=True)]
).run()
