"""Admin: accounts and roles (no clinical actions)."""

import streamlit as st

from recommender.services.permissions import Role
from recommender.web.ui import actor, service, show_refusal

svc, me = service(), actor()
st.title("Users and roles")
st.dataframe(svc.list_users(me), hide_index=True, key="us_table")
roles = [r.value for r in Role]
with st.form("add_user"):
    st.markdown("**Add a user**")
    username = st.text_input("Username", key="us_name")
    role = st.selectbox("Role", roles, key="us_role")
    password = st.text_input("Initial password (10+ characters)", type="password", key="us_pw")
    if st.form_submit_button("Add user"):
        try:
            svc.add_user(me, username, role, password)
            st.success(f"Added {username}.")
        except Exception as exc:  # noqa: BLE001
            show_refusal(exc)
st.markdown("**Change a user**")
users = list(svc.list_users(me)["username"])
who = st.selectbox("User", users, key="us_who")
c1, c2, c3 = st.columns(3)
try:
    if c1.button("Disable", key="us_disable"):
        svc.disable_user(me, who)
        st.rerun()
    if c1.button("Enable and unlock", key="us_enable"):
        svc.enable_user(me, who)
        st.rerun()
    new_role = c2.selectbox("New role", roles, key="us_new_role")
    if c2.button("Set role", key="us_set_role"):
        svc.set_role(me, who, new_role)
        st.rerun()
    new_pw = c3.text_input("New password", type="password", key="us_new_pw")
    if c3.button("Reset password", key="us_reset"):
        svc.reset_password(me, who, new_pw)
        st.success("Password reset.")
except Exception as exc:  # noqa: BLE001
    show_refusal(exc)
