"""The AIOps Suite dashboard: the entry point only builds the navigation.

Run with `aiops dashboard` (which sets AIOPS_HOME); each page is one file beside this one.
"""

from __future__ import annotations

import streamlit as st

st.set_page_config(page_title="AIOps Suite", page_icon=":material/monitoring:", layout="wide")
st.navigation(
    {
        "Operate": [
            st.Page("overview.py", title="Overview", icon=":material/dashboard:", default=True),
            st.Page("incidents.py", title="Incidents", icon=":material/crisis_alert:"),
            st.Page("slos.py", title="SLOs", icon=":material/speed:"),
            st.Page("changes.py", title="Changes", icon=":material/published_with_changes:"),
        ],
        "Explore": [
            st.Page("traffic.py", title="Traffic explorer", icon=":material/travel_explore:"),
            st.Page("llm.py", title="LLM usage and cost", icon=":material/smart_toy:"),
            st.Page("capacity.py", title="Capacity", icon=":material/trending_up:"),
        ],
        "Configure": [
            st.Page("services.py", title="Services", icon=":material/hub:"),
            st.Page("gateway.py", title="Gateway", icon=":material/router:"),
        ],
    }
).run()
