"""How a thread worker's result reaches the UI: one way for every panel and widget.

A thread worker must not touch widgets, so it hands its result over as a message
(:class:`~kimi_tui.tui.messages.Deliver`: posting never waits, where ``app.call_from_thread``
blocks the worker and can block it forever once the app has stopped). The result is applied
only while the receiver can show it: a result that arrives as the app quits, perhaps while
its receiver is still being built with half its children, would query widgets that are gone.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

from kimi_tui.tui.messages import Deliver


class TakesWorkerResults:
    """Mixed into a Widget: ``deliver`` from its workers, ``on_deliver`` applies on the UI thread."""

    def deliver(self, callback: Callable[..., object], *args: object, **kwargs: object) -> None:
        """From a worker thread: run ``callback(*args, **kwargs)`` on the UI thread, without waiting."""
        try:
            self.post_message(Deliver(callback, *args, **kwargs))
        except RuntimeError:  # the app's loop is already closed: nobody is left to show it
            pass

    @property
    def takes_results(self) -> bool:
        """Mounted, attached, and the app not shutting down."""
        return self.is_mounted and self.is_attached and self.app.is_running

    async def on_deliver(self, message: Deliver) -> None:
        message.stop()
        if not self.takes_results:
            return
        result = message.callback(*message.args, **message.kwargs)
        if inspect.isawaitable(result):  # a callback that mounts or removes widgets
            await result
