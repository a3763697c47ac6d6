"""A minimal client of Streamlit's own websocket protocol, for load benchmarks.

It does what the browser's JavaScript does on the wire, and nothing it draws: open
``/_stcore/stream``, send ``BackMsg.rerun_script`` with the widget values the user set,
and read ``ForwardMsg`` deltas until the script run has finished.  A step's time is thus
the server's whole answer (queueing, the script run, serialising every element) as one
therapist's browser would receive it; the browser's own rendering, which happens on the
therapist's computer, is left out.

Only what the load benchmark needs is spoken: buttons and form submit buttons, text
inputs, select boxes, radios, select sliders, page switches, and fragments (a widget
inside ``st.fragment`` reruns only its fragment, as in the browser).  Widgets are found by
their label, as a user finds them.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import websockets
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.WidgetStates_pb2 import WidgetState

EARLY_FOR_RERUN = ForwardMsg.ScriptFinishedStatus.Value("FINISHED_EARLY_FOR_RERUN")
WIDGETS = ("button", "text_input", "selectbox", "radio", "slider")


class ProtocolError(RuntimeError):
    """The app did not answer as a browser would expect (an exception shown, no widget)."""


@dataclass
class StreamlitSession:
    """One browser tab's conversation with a Streamlit server."""

    url: str  # http://host:port
    timeout: float = 120.0
    pages: dict[str, str] = field(default_factory=dict)  # page title -> script hash
    elements: dict[tuple[int, ...], object] = field(default_factory=dict)  # this run's elements
    _states: dict[str, WidgetState] = field(default_factory=dict)
    _fragment_of: dict[tuple[int, ...], str] = field(default_factory=dict)  # element path -> fragment
    _page_hash: str = ""

    async def __aenter__(self) -> "StreamlitSession":
        ws_url = self.url.replace("http", "ws", 1) + "/_stcore/stream"
        self._ws = await websockets.connect(ws_url, subprotocols=["streamlit"], origin=self.url,
                                            max_size=None, open_timeout=self.timeout)
        await self.rerun()
        return self

    async def __aexit__(self, *exc) -> None:
        await self._ws.close()

    # ------------------------------------------------------------------ a script run

    async def rerun(self, *changes: WidgetState, page: str | None = None) -> float:
        """Send one rerun with ``changes`` (and a page switch); seconds until it finished."""
        triggers = [c for c in changes if c.WhichOneof("value") == "trigger_value"]
        for change in changes:
            if change not in triggers:
                self._states[change.id] = change
        msg = BackMsg()
        state = msg.rerun_script
        state.page_script_hash = self.pages[page] if page else self._page_hash
        fragments = {self._fragment_of.get(p, "") for p, e in self.elements.items()
                     if e.WhichOneof("type") in WIDGETS and getattr(e, e.WhichOneof("type")).id
                     in {c.id for c in changes}}
        if len(fragments) == 1 and "" not in fragments and page is None:
            state.fragment_id = fragments.pop()  # as the browser: a widget in a fragment reruns only that
        state.widget_states.widgets.extend([*self._states.values(), *triggers])
        t0 = time.perf_counter()
        await self._ws.send(msg.SerializeToString())
        await asyncio.wait_for(self._until_finished(), self.timeout)
        return time.perf_counter() - t0

    async def _until_finished(self) -> None:
        while True:
            fwd = ForwardMsg()
            fwd.ParseFromString(await self._ws.recv())
            kind = fwd.WhichOneof("type")
            if kind == "new_session":
                running = set(fwd.metadata.run.fragment_ids)
                stale = [p for p in self.elements if not running or self._fragment_of.get(p) in running]
                for path in stale:  # a run starts: the browser replaces the page, or the fragment
                    del self.elements[path]
                    self._fragment_of.pop(path, None)
                if fwd.new_session.page_script_hash:
                    self._page_hash = fwd.new_session.page_script_hash
            elif kind == "navigation":
                self.pages = {p.page_name: p.page_script_hash for p in fwd.navigation.app_pages}
                self._page_hash = fwd.navigation.page_script_hash or self._page_hash
            elif kind == "delta" and fwd.delta.WhichOneof("type") == "new_element":
                path = tuple(fwd.metadata.delta_path)
                self.elements[path] = fwd.delta.new_element
                if fwd.delta.fragment_id:
                    self._fragment_of[path] = fwd.delta.fragment_id
            elif kind == "script_finished" and fwd.script_finished != EARLY_FOR_RERUN:  # whole or fragment
                self._raise_shown_exception()
                shown = {getattr(e, e.WhichOneof("type")).id for e in self.elements.values()
                         if e.WhichOneof("type") in WIDGETS}
                self._states = {k: v for k, v in self._states.items() if k in shown}  # as the browser forgets
                return

    def _raise_shown_exception(self) -> None:
        for element in self.elements.values():
            if element.WhichOneof("type") == "exception":
                raise ProtocolError(f"the app showed an exception: {element.exception.message}")

    # ------------------------------------------------------------------ what is on the page

    def widget(self, kind: str, label: str):
        """The widget proto of ``kind`` with ``label`` on the page now."""
        for element in self.elements.values():
            if element.WhichOneof("type") == kind and getattr(element, kind).label == label:
                return getattr(element, kind)
        on_page = sorted({getattr(e, e.WhichOneof("type")).label for e in self.elements.values()
                          if e.WhichOneof("type") in WIDGETS})
        raise ProtocolError(f"no {kind} labelled {label!r} on the page; widgets: {on_page}")

    def has(self, kind: str, label: str) -> bool:
        return any(e.WhichOneof("type") == kind and getattr(e, kind).label == label
                   for e in self.elements.values())

    def texts(self) -> list[str]:
        """The visible text of headings, alerts, markdown, plain text and metrics, in page order."""
        out = []
        for _, element in sorted(self.elements.items()):
            kind = element.WhichOneof("type")
            if kind in ("alert", "markdown", "text", "heading"):
                out.append(getattr(element, kind).body)
            elif kind == "metric":
                out.append(f"{element.metric.label}: {element.metric.body}")
        return out

    def metric(self, label: str) -> str:
        for element in self.elements.values():
            if element.WhichOneof("type") == "metric" and element.metric.label == label:
                return element.metric.body
        raise ProtocolError(f"no metric {label!r} on the page")

    def current(self, select_slider) -> str:
        """The stop a select slider shows now (the value sent, else the server's)."""
        sent = self._states.get(select_slider.id)
        if sent is not None:
            return sent.string_array_value.data[0]
        indices = select_slider.value if select_slider.set_value else select_slider.default
        return select_slider.options[int(indices[0])]

    # ------------------------------------------------------------------ what a user does

    @staticmethod
    def click(button) -> WidgetState:
        return WidgetState(id=button.id, trigger_value=True)

    @staticmethod
    def type_text(text_input, value: str) -> WidgetState:
        return WidgetState(id=text_input.id, string_value=value)

    @staticmethod
    def choose(widget, option: str) -> WidgetState:
        """A select box or radio set to the option shown as ``option``."""
        if option not in widget.options:
            raise ProtocolError(f"{widget.label!r} has no option {option!r}: {list(widget.options)}")
        return WidgetState(id=widget.id, string_value=option)

    @staticmethod
    def slide(select_slider, option: str) -> WidgetState:
        if option not in select_slider.options:
            raise ProtocolError(f"{select_slider.label!r} has no stop {option!r}")
        state = WidgetState(id=select_slider.id)
        state.string_array_value.data.append(option)
        return state
