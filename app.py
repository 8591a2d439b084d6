"""AwakNow dashboard entry point.

``streamlit run app.py`` imports this module to find ``app`` (the ASGI app serving pages, the
Tavus callback route and the mock room from one process), then runs it as the page script,
where it decides who is here (``signin.gate``) and routes between the pages in ``pages/`` that
their role may open. AppTest runs it as the page script only.
"""

import streamlit as st

if __name__ != "__main__":
    from awaknow import server

    server.refuse_open_server()
    app = st.App(__file__, routes=server.routes(), lifespan=server.lifespan)
else:
    from awaknow import signin, ui

    st.set_page_config(
        page_title="AwakNow",
        page_icon=":material/self_improvement:",
        layout="wide",
        initial_sidebar_state="expanded",
    )
    # (section, page file, title, icon); each page re-checks its own permission when it runs.
    PAGES = (
        ("Sessions", "start_session.py", "Start a session", ":material/videocam:"),
        ("Sessions", "sessions.py", "Sessions", ":material/list_alt:"),
        ("Analytics", "analytics.py", "Usage analytics", ":material/insights:"),
        ("Analytics", "costs.py", "Tavus costs", ":material/payments:"),
        ("Analytics", "engagement.py", "Engagement", ":material/group_add:"),
        ("Analytics", "feedback.py", "Feedback", ":material/reviews:"),
        ("Setup", "persona.py", "Persona and mode", ":material/face:"),
        ("Setup", "plans.py", "Plans and users", ":material/group:"),
        ("Setup", "people.py", "People and roles", ":material/admin_panel_settings:"),
        ("Setup", "audit.py", "Audit log", ":material/policy:"),
    )
    viewer = signin.gate()
    if viewer is None:  # signed out, no role, or an open server: one screen, nothing else
        navigation = st.navigation(
            [st.Page(signin.entry_screen, title="AwakNow", url_path="welcome", default=True)],
            position="hidden",
        )
    else:
        sections: dict[str, list] = {}
        for section, file, title, icon in PAGES:
            if viewer.can_open(file):
                first = not sections
                page = st.Page(f"pages/{file}", title=title, icon=icon, default=first)
                sections.setdefault(section, []).append(page)
        navigation = st.navigation(sections)
        ui.render_sidebar(viewer)
    navigation.run()
