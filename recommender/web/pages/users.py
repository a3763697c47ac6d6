"""Admin: accounts and roles (no clinical actions)."""

import streamlit as st

from recommender.services.identity import MIN_PASSWORD_LENGTH
from recommender.services.permissions import Role
from recommender.web.ui import actor, service, show_refusal, text
from recommender.web.wording import ROLE_LABELS, published_accounts_warning, users_table

svc, me = service(), actor()
st.title("Users and roles")
if flash := st.session_state.pop("users_flash", None):
    st.success(flash)
if demo_accounts := svc.published_password_accounts(me):
    st.warning(published_accounts_warning(demo_accounts), icon="⚠️")
accounts = svc.list_users(me)  # read once per run: every change below reruns the page
st.dataframe(users_table(accounts), hide_index=True, key="us_table")
roles = [r.value for r in Role]
PASSWORD_HELP = (f"At least {MIN_PASSWORD_LENGTH} characters; a few unrelated words work well. "
                 "Not the username, not a common password.")
with st.form("add_user"):
    st.markdown("**Add a user**")
    username = st.text_input("Username", key="us_name")
    role = st.selectbox("Role", roles, key="us_role", format_func=ROLE_LABELS.get)
    password = st.text_input("Initial password", type="password", key="us_pw", help=PASSWORD_HELP)
    if st.form_submit_button("Add user"):
        try:
            svc.add_user(me, username, role, password)
            st.session_state["users_flash"] = f"Added {text(username)}."
            st.rerun()
        except Exception as exc:  # noqa: BLE001
            show_refusal(exc)
st.markdown("**Change a user**")
users = list(accounts["username"])
who = st.selectbox("User", users, key="us_who")
c1, c2, c3 = st.columns(3)
try:
    if c1.button("Disable", key="us_disable"):
        svc.disable_user(me, who)
        st.session_state["users_flash"] = f"Disabled {text(who)}; their sessions have ended."
        st.rerun()
    if c1.button("Enable and unlock", key="us_enable"):
        svc.enable_user(me, who)
        st.session_state["users_flash"] = f"Enabled and unlocked {text(who)}."
        st.rerun()
    new_role = c2.selectbox("New role", roles, key="us_new_role", format_func=ROLE_LABELS.get)
    if c2.button("Set role", key="us_set_role"):
        svc.set_role(me, who, new_role)
        st.session_state["users_flash"] = f"{text(who)} is now {ROLE_LABELS[new_role].lower()}."
        st.rerun()
except Exception as exc:  # noqa: BLE001
    show_refusal(exc)
# A form sends the password typed so far even when focus left the field for its show/hide
# button (Tab), and empties the field afterwards, so it is never given to the next user chosen.
with c3.form("us_reset_form", clear_on_submit=True, border=False):
    new_pw = st.text_input("New password", type="password", key="us_new_pw", help=PASSWORD_HELP)
    if st.form_submit_button("Reset password"):
        try:
            svc.reset_password(me, who, new_pw)
            st.session_state["users_flash"] = f"Password of {text(who)} reset; their sessions have ended."
            st.rerun()
        except Exception as exc:  # noqa: BLE001
            show_refusal(exc)
