"""AwakNow dashboard entry point.

``streamlit run app.py`` imports this module to find ``app`` (the ASGI app serving pages, the
Tavus callback route and the mock room from one process), then runs it as the page script,
where it routes between the files in ``pages/``. AppTest runs it as the page script only.
"""

import streamlit as st

if __name__ != "__main__":
    from awaknow import server

    app = st.App(__file__, routes=server.routes(), lifespan=server.lifespan)
else:
    from awaknow import ui

    st.set_page_config(
        page_title="AwakNow",
        page_icon=":material/self_improvement:",
        layout="wide",
        initial_sidebar_state="expanded",
    )
    navigation = st.navigation(
        {
            "Sessions": [
                st.Page(
                    "pages/start_session.py",
                    title="Start a session",
                    icon=":material/videocam:",
                    default=True,
                ),
                st.Page("pages/sessions.py", title="Sessions", icon=":material/list_alt:"),
            ],
            "Analytics": [
                st.Page("pages/analytics.py", title="Usage analytics", icon=":material/insights:"),
                st.Page("pages/costs.py", title="Tavus costs", icon=":material/payments:"),
            ],
            "Setup": [
                st.Page("pages/persona.py", title="Persona and mode", icon=":material/face:"),
                st.Page("pages/plans.py", title="Plans and users", icon=":material/group:"),
            ],
        }
    )
    ui.render_sidebar()
    navigation.run()
